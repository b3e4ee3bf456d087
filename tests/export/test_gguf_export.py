"""GGUF export: file structure on tiny models, llama.cpp runs, then the real SmolLM2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGUFReader, dequantize

from wattlm.compress.qmath import snr_db
from wattlm.errors import WattlmError
from wattlm.export import QTYPES, export_gguf, unpermute_rope
from wattlm.export._gguf_vocab import vocab_from_tokenizer
from wattlm.export.gguf_reader import check_gguf
from wattlm.testing.tiny import tiny_causal_lm

PER_LAYER = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output"]
PER_LAYER += ["ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
TEXT = "The quick brown fox jumps over the lazy dog. Energy is measured in joules; power in watts."


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def tensors(path) -> dict:
    return {t.name: t for t in GGUFReader(path).tensors}


def as_float(t) -> np.ndarray:
    """A GGUFReader tensor as float32 in numpy (torch) shape."""
    return dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))


def drop_layer(model, index: int) -> None:
    """Remove a decoder layer by hand, as structured pruning does."""
    del model.model.layers[index]
    model.config.num_hidden_layers = len(model.model.layers)
    for i, layer in enumerate(model.model.layers):
        layer.self_attn.layer_idx = i


@pytest.mark.parametrize("qtype", sorted(QTYPES))
def test_export_passes_check_gguf(tiny_lm, tmp_path, qtype):
    path = export_gguf(tiny_lm.model, tiny_lm.tokenizer, tmp_path / "m.gguf", qtype=qtype)
    info = check_gguf(path)
    assert info.architecture == "llama"
    assert info.tensor_count == 2 + 9 * 2  # embedding + final norm; tied: no output tensor
    assert info.parameter_count == params(tiny_lm.model)
    assert info.file_type_name.lower().endswith(qtype.upper().lower())
    assert info.vocab_size == len(tiny_lm.tokenizer) and info.context_length == 256
    assert info.metadata["llama.attention.head_count_kv"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]  # no temporary file left


def test_tensor_names_shapes_and_types(tiny_lm, tmp_path):
    t = tensors(export_gguf(tiny_lm.model, tiny_lm.tokenizer, tmp_path / "m.gguf"))
    names = {"token_embd.weight", "output_norm.weight"}
    names |= {f"blk.{i}.{n}.weight" for i in range(2) for n in PER_LAYER}
    assert set(t) == names
    shape = {n: tuple(x.shape.tolist()) for n, x in t.items()}  # ggml order: (in, out)
    assert shape["token_embd.weight"] == (64, 320)
    assert shape["blk.1.attn_q.weight"] == (64, 64) and shape["blk.1.attn_k.weight"] == (64, 32)
    assert shape["blk.0.ffn_gate.weight"] == (64, 128) and shape["blk.0.ffn_down.weight"] == (
        128,
        64,
    )
    assert t["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    assert t["blk.0.ffn_up.weight"].tensor_type.name == "F16"


def test_q_and_k_rows_are_permuted_for_llamacpp_rope(tiny_lm, tmp_path):
    t = tensors(export_gguf(tiny_lm.model, tiny_lm.tokenizer, tmp_path / "m.gguf", qtype="f32"))
    attn = tiny_lm.model.model.layers[1].self_attn
    for name, module, heads in (("attn_q", attn.q_proj, 4), ("attn_k", attn.k_proj, 2)):
        stored, original = as_float(t[f"blk.1.{name}.weight"]), module.weight.detach().numpy()
        assert not np.array_equal(stored, original)
        np.testing.assert_array_equal(unpermute_rope(stored, heads), original)
    np.testing.assert_array_equal(
        as_float(t["blk.1.attn_v.weight"]), attn.v_proj.weight.detach().numpy()
    )


def test_quantized_exports_are_smaller_and_close(tiny_lm, tmp_path):
    lm, sizes = tiny_lm, {}
    for q in ("f16", "q8_0", "q4_0"):
        path = export_gguf(lm.model, lm.tokenizer, tmp_path / f"{q}.gguf", qtype=q)
        sizes[q] = path.stat().st_size
        t = tensors(path)["blk.0.ffn_up.weight"]
        assert t.tensor_type.name == q.upper()
        snr = snr_db(
            lm.model.model.layers[0].mlp.up_proj.weight.detach(), torch.from_numpy(as_float(t))
        )
        assert snr > {"f16": 60, "q8_0": 35, "q4_0": 15}[q]
    assert sizes["q4_0"] < sizes["q8_0"] < 0.6 * sizes["f16"]
    assert tensors(tmp_path / "q4_0.gguf")["token_embd.weight"].tensor_type.name == "Q8_0"


def test_rows_that_do_not_fill_blocks_fall_back_to_f16(tmp_path):
    lm = tiny_causal_lm()
    mlp = lm.model.model.layers[0].mlp
    mlp.down_proj = torch.nn.Linear(80, 64, bias=False)  # 80 columns: not whole q8_0 blocks
    mlp.gate_proj, mlp.up_proj = (
        torch.nn.Linear(64, 80, bias=False),
        torch.nn.Linear(64, 80, bias=False),
    )
    path = export_gguf(lm.model, lm.tokenizer, tmp_path / "m.gguf", qtype="q8_0")
    t = tensors(path)
    assert t["blk.0.ffn_down.weight"].tensor_type.name == "F16"
    assert t["blk.0.ffn_up.weight"].tensor_type.name == "Q8_0"
    info = check_gguf(path)  # layers differ: llama.cpp's per-layer Llama ("deci")
    assert info.architecture == "deci" and info.metadata["deci.feed_forward_length"] == [80, 128]


def test_int_quantized_or_odd_modules_are_refused(tiny_lm, tmp_path):
    class QLinear(torch.nn.Linear):
        pass

    attn = tiny_lm.model.model.layers[0].self_attn
    attn.v_proj = QLinear(64, 32, bias=False)
    with pytest.raises(WattlmError, match="export the float model"):
        export_gguf(tiny_lm.model, tiny_lm.tokenizer, tmp_path / "m.gguf")
    attn.v_proj = torch.nn.Linear(64, 32, bias=True)
    with pytest.raises(WattlmError, match="has a bias"):
        export_gguf(tiny_lm.model, tiny_lm.tokenizer, tmp_path / "m.gguf")
    with pytest.raises(WattlmError, match="unknown GGUF qtype"):
        export_gguf(tiny_lm.model, tiny_lm.tokenizer, tmp_path / "m.gguf", qtype="q2_k")
    assert not list(tmp_path.iterdir())


def test_layer_count_must_match_config(tiny_lm, tmp_path):
    del tiny_lm.model.model.layers[0]
    with pytest.raises(WattlmError, match="num_hidden_layers=2 but the model has 1"):
        export_gguf(tiny_lm.model, tiny_lm.tokenizer, tmp_path / "m.gguf")


def test_vocab_metadata_from_the_tokenizer(tiny_lm):
    tok = tiny_lm.tokenizer
    v = vocab_from_tokenizer(tok, 330)  # embedding rows beyond the tokenizer are padding
    assert v.tokens[:3] == ["<s>", "</s>", "<pad>"] and v.types[:4] == [3, 3, 3, 1]
    assert v.tokens[325] == "[PAD325]" and v.types[325] == 5
    assert v.tokens[tok.convert_tokens_to_ids("Ġthe")] == "Ġthe"
    assert (v.bos_token_id, v.eos_token_id, v.padding_token_id) == (0, 1, 2)
    assert len(v.merges) == 320 - 3 - 256  # every non-special, non-byte token is a merge
    with pytest.raises(WattlmError, match="beyond the embedding"):
        vocab_from_tokenizer(tok, 100)


# -- llama.cpp runs the export ---------------------------------------------------------------


def sharp_untied(lm, layers_to_drop=()):
    """A tiny model with confident greedy choices and an untied head (``output.weight``).

    Byte tokens that are not UTF-8 on their own get a zero head row: llama.cpp's server
    merges such tokens in its reply, which would hide their ids.
    """
    m, tok = lm.model, lm.tokenizer
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.mul_(10)
        m.config.tie_word_embeddings = False
        m.lm_head.weight = torch.nn.Parameter(m.model.embed_tokens.weight.detach().clone())
        m.lm_head.weight[[i for i in range(len(tok)) if "\ufffd" in tok.decode([i])]] = 0
    for i in sorted(layers_to_drop, reverse=True):
        drop_layer(m, i)
    return m


def greedy_torch(model, ids: list[int], n: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False
        )
    return out[0, len(ids) :].tolist()


def greedy_llamacpp(path, ids: list[int], n: int) -> list[int]:
    from wattlm.bench.backends.llamacpp import LlamaCppBackend

    with LlamaCppBackend(path, threads=1, batch_size=1, context_tokens=len(ids) + n + 1) as b:
        return b.generate([ids], n)[0]


@pytest.mark.parametrize(
    ("layers", "drop", "qtype"), [(2, (), "f32"), (2, (), "f16"), (4, (1, 2), "f32")]
)
def test_llamacpp_generates_the_torch_tokens(tmp_path, layers, drop, qtype):
    pytest.importorskip("xllamacpp")
    lm = tiny_causal_lm(layers=layers)
    model = sharp_untied(lm, drop)
    ids = lm.tokenizer(TEXT).input_ids
    path = export_gguf(model, lm.tokenizer, tmp_path / "m.gguf", qtype=qtype)
    assert "output.weight" in tensors(path) and check_gguf(path).metadata[
        "llama.block_count"
    ] == layers - len(drop)
    assert greedy_llamacpp(path, ids, 16) == greedy_torch(model, ids, 16)


# -- the real SmolLM2 ------------------------------------------------------------------------

EIFFEL = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
    "from 1887 to 1889. Locally nicknamed"
)


@pytest.fixture(scope="module")
def smollm2():
    from wattlm.assets import asset_path, is_cached

    if not is_cached("smollm2-135m"):
        pytest.skip("asset smollm2-135m not fetched (run `wattlm assets fetch smollm2-135m`)")
    pytest.importorskip("xllamacpp")
    from wattlm.models.load import load_model

    return load_model("smollm2-135m"), asset_path("smollm2-135m")


@pytest.mark.assets
def test_smollm2_vocab_matches_the_reference_gguf(smollm2):
    from wattlm.export._gguf_vocab import vocab_from_gguf

    lm, asset = smollm2
    ref, ours = vocab_from_gguf(asset), vocab_from_tokenizer(lm.tokenizer, 49152)
    assert ours.tokens == ref.tokens and ours.types == ref.types and ours.merges == ref.merges
    ids = ("bos", "eos", "unknown", "padding")
    assert [getattr(ours, f"{k}_token_id") for k in ids] == [
        getattr(ref, f"{k}_token_id") for k in ids
    ]
    assert ours.add_bos_token is ref.add_bos_token is False
    # transformers' GGUF loader drops SmolLM2's digit splitting: derived "gpt-2", file "smollm"
    assert (ours.pre, ref.pre) == ("gpt-2", "smollm")


@pytest.mark.assets
@pytest.mark.parametrize(("qtype", "agree"), [("f16", 4), ("q8_0", 2)])
def test_smollm2_export_runs_in_llamacpp(smollm2, tmp_path, qtype, agree):
    lm, asset = smollm2
    path = export_gguf(
        lm.model, None, tmp_path / f"{qtype}.gguf", qtype=qtype, tokenizer_gguf=asset
    )
    info = check_gguf(path)
    assert info.parameter_count == params(lm.model) == 134_515_008
    assert info.tensor_count == 272 and info.metadata["tokenizer.ggml.pre"] == "smollm"
    ids = lm.tokenizer(EIFFEL).input_ids
    expected = greedy_torch(lm.model, ids, 16)
    got = greedy_llamacpp(path, ids, 16)
    assert got[:agree] == expected[:agree], (got, expected)


@pytest.mark.assets
def test_smollm2_without_two_layers_exports_and_runs(smollm2, tmp_path):
    import copy

    lm, _ = smollm2
    model = copy.deepcopy(lm.model)
    for i in (25, 20):
        drop_layer(model, i)
    path = export_gguf(model, lm.tokenizer, tmp_path / "drop2.gguf", qtype="q8_0")
    info = check_gguf(path)
    assert info.metadata["llama.block_count"] == 28 and info.parameter_count == params(model)
    ids = lm.tokenizer(EIFFEL).input_ids
    got = greedy_llamacpp(path, ids, 8)
    assert len(got) == 8 and got[0] == greedy_torch(model, ids, 1)[0]


@pytest.mark.assets
def test_smollm2_q4_1_export_reproduces_the_asset_bit_for_bit(smollm2, tmp_path):
    """The model in memory is the asset's Q4_1 grid dequantized: writing it back as q4_1
    must give the very bytes llama.cpp's own converter wrote (names, Q/K order, blocks)."""
    lm, asset = smollm2
    path = export_gguf(lm.model, lm.tokenizer, tmp_path / "q4_1.gguf", qtype="q4_1")
    ours, ref = tensors(path), tensors(asset)
    assert set(ours) == set(ref)
    for name, t in ref.items():
        assert ours[name].tensor_type == t.tensor_type, name
        assert ours[name].data.tobytes() == t.data.tobytes(), name
