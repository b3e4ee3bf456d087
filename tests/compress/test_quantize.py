"""int8-weight / int4-weight / int8-dynamic on whole (tiny) models: what they store, what
they skip, how close the logits stay, and the save → restore → load round trip."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from wattlm.compress import CompressConfig, compress_, qmath, restore_
from wattlm.compress.qlinear import Int8DynamicLinear, Int8WeightLinear
from wattlm.compress.qlinear_int4 import Int4WeightLinear
from wattlm.compress.quantize import Int4WeightConfig, Int8DynamicConfig, Int8WeightConfig
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm

IDS = torch.randint(3, 300, (2, 24), generator=torch.Generator().manual_seed(0))

# (config, module class, stored bytes per weight of a quantized layer at most, logits SNR floor)
# int8: 1 byte + 4 bytes per row; int4 g32: 0.5 byte + 2×2 bytes per 32 weights = 0.625.
# Logit SNR floors sit ~6 dB under what the tiny model gives (≈ 45 / 43 / 22 dB).
CASES = [
    (Int8WeightConfig(), Int8WeightLinear, 1.07, 35),
    (Int8DynamicConfig(), Int8DynamicLinear, 1.07, 33),
    (Int4WeightConfig(group_size=32), Int4WeightLinear, 0.63, 16),
]


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits.float()


@pytest.mark.parametrize(("config", "cls", "bytes_per_weight", "snr_floor"), CASES)
def test_quantizes_every_linear_but_skipped_and_stays_close(
    config, cls, bytes_per_weight, snr_floor
):
    lm = tiny_causal_lm()
    ref = _logits(lm.model)
    report = compress_(lm.model, config)
    layers = lm.model.model.layers
    quantized = [m for m in lm.model.modules() if isinstance(m, cls)]
    assert len(quantized) == 2 * 7 == report["layers_quantized"]
    assert type(lm.model.lm_head) is torch.nn.Linear and report["layers_skipped"] == ["lm_head"]
    assert lm.model.lm_head.weight is lm.model.model.embed_tokens.weight  # still tied
    assert isinstance(layers[1].mlp.down_proj, cls)
    assert not any(isinstance(m, torch.nn.Linear) for m in layers.modules())
    weights = sum(m.in_features * m.out_features for m in quantized)
    assert report["quantized_weight_bytes_before"] == 4 * weights
    assert report["quantized_weight_bytes_after"] <= bytes_per_weight * weights
    assert report["weight_bytes_after"] < report["weight_bytes_before"]
    assert qmath.snr_db(ref, _logits(lm.model)) > snr_floor


def test_stored_dtypes():
    lm = tiny_causal_lm()
    compress_(lm.model, Int8WeightConfig())
    state = lm.model.state_dict()
    assert state["model.layers.0.self_attn.q_proj.qweight"].dtype == torch.int8
    assert state["model.layers.0.self_attn.q_proj.scale"].dtype == torch.float32
    assert "model.layers.0.self_attn.q_proj.weight" not in state
    lm = tiny_causal_lm()
    compress_(lm.model, Int4WeightConfig())
    state = lm.model.state_dict()
    assert state["model.layers.0.mlp.up_proj.qweight"].dtype == torch.uint8
    assert state["model.layers.0.mlp.up_proj.qweight"].shape == (128, 32)
    assert state["model.layers.0.mlp.up_proj.scales_and_zeros"].dtype == torch.bfloat16
    assert state["model.embed_tokens.weight"].dtype == torch.bfloat16  # embedding_dtype


def test_embedding_dtype_halves_the_tied_embedding_and_keeps_it_tied():
    sizes = {}
    for dtype in (None, "bfloat16"):
        lm = tiny_causal_lm()
        report = compress_(lm.model, Int4WeightConfig(embedding_dtype=dtype))
        sizes[dtype] = report["weight_bytes_after"]
        emb = lm.model.model.embed_tokens.weight
        assert lm.model.lm_head.weight is emb
        assert emb.dtype == (torch.bfloat16 if dtype else torch.float32)
        assert _logits(lm.model).dtype == torch.float32
        assert lm.model(IDS).logits.dtype == torch.float32  # the rest stays fp32
    assert sizes[None] - sizes["bfloat16"] == 320 * 64 * 2


def test_skip_patterns_are_respected():
    lm = tiny_causal_lm()
    report = compress_(lm.model, Int8DynamicConfig(skip=("lm_head", "*.mlp.*")))
    assert report["layers_quantized"] == 2 * 4
    assert type(lm.model.model.layers[0].mlp.up_proj) is torch.nn.Linear
    assert isinstance(lm.model.model.layers[0].self_attn.o_proj, Int8DynamicLinear)
    with pytest.raises(WattlmError, match="no Linear layer left"):
        compress_(tiny_causal_lm().model, Int8WeightConfig(skip=("*",)))


def test_group_size_error_comes_before_any_change():
    lm = tiny_causal_lm()  # hidden size 64: group 128 does not divide q_proj's inputs
    with pytest.raises(WattlmError, match=r"q_proj: group size 128 does not divide 64") as err:
        compress_(lm.model, Int4WeightConfig(group_size=128, embedding_dtype="bfloat16"))
    assert str(err.value).count("pick a group size") == 1
    assert not any(isinstance(m, Int4WeightLinear) for m in lm.model.modules())
    assert lm.model.model.embed_tokens.weight.dtype == torch.float32


@pytest.mark.parametrize(
    "config",
    [
        Int8WeightConfig(),
        Int8DynamicConfig(embedding_dtype="float16"),
        Int4WeightConfig(),
        Int4WeightConfig(group_size=64, skip=(), compute_dtype="float32"),  # quantized lm_head
    ],
)
def test_restore_round_trip_through_safetensors(tmp_path, config):
    lm = tiny_causal_lm()
    compress_(lm.model, config)
    out = _logits(lm.model)  # int4: qweight now holds the CPU kernel's layout
    # safetensors refuses shared tensors: store the tied pair as two copies
    state = {k: v.detach().clone().contiguous() for k, v in lm.model.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    fresh = tiny_causal_lm(seed=1).model
    restore_(fresh, CompressConfig.from_dict(config.to_dict()))
    fresh.load_state_dict(load_file(str(tmp_path / "model.safetensors")), strict=True)
    assert torch.equal(_logits(fresh), out)
    tied = "lm_head" in config.skip
    assert fresh.config.tie_word_embeddings is tied
    if tied:
        assert fresh.lm_head.weight is fresh.model.embed_tokens.weight
    else:
        assert isinstance(fresh.lm_head, Int4WeightLinear)


def test_save_and_load_compressed_folder(tmp_path):
    from transformers import AutoModelForCausalLM

    from wattlm.compress.saved import load_compressed, save_compressed

    lm = tiny_causal_lm()
    stage = compress_(lm.model, Int4WeightConfig())
    out = _logits(lm.model)
    save_compressed(lm.model, [stage], tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    loaded = load_compressed(tmp_path, spec="tiny", auto=AutoModelForCausalLM, task="causal-lm")
    assert torch.equal(_logits(loaded.model), out)
    generated = loaded.model.generate(IDS[:1, :4], max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 7)


def test_configs_round_trip_and_validate():
    configs = [
        Int8WeightConfig(skip=("lm_head", "*.down_proj"), compute_dtype="float32"),
        Int4WeightConfig(group_size=128, embedding_dtype=None, zero_point="int"),
        Int8DynamicConfig(skip=()),
    ]
    for cfg in configs:
        assert type(cfg).from_dict(cfg.to_dict()) == cfg
        assert CompressConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(WattlmError, match="group_size 48 is not supported"):
        Int4WeightConfig(group_size=48)
    with pytest.raises(WattlmError, match="compute_dtype 'int8' is not supported"):
        Int8WeightConfig(compute_dtype="int8")
    with pytest.raises(WattlmError, match="compute_dtype 'float16' is not supported"):
        Int4WeightConfig(compute_dtype="float16")
    with pytest.raises(WattlmError, match="zero_point 'none' is not supported"):
        Int4WeightConfig(zero_point="none")
    with pytest.raises(WattlmError, match="embedding_dtype 'int4' is not supported"):
        Int8DynamicConfig(embedding_dtype="int4")


@pytest.mark.assets
@pytest.mark.slow
def test_smollm2_int4_keeps_perplexity_and_shrinks_weights():
    from wattlm import assets
    from wattlm.bench.quality import perplexity
    from wattlm.data.text import load_text
    from wattlm.models.fingerprint import weight_bytes
    from wattlm.models.load import load_model

    if not assets.is_cached("smollm2-135m"):
        pytest.skip("asset smollm2-135m not fetched (wattlm assets fetch smollm2-135m)")
    lm = load_model("smollm2-135m")
    ids = lm.tokenizer(load_text("wiki-sample", "test")).input_ids[:1024]
    base = perplexity(lm.model, ids, max_length=512, stride=256).value
    report = compress_(lm.model, Int4WeightConfig())
    assert report["layers_quantized"] == 30 * 7
    assert weight_bytes(lm.model) < 0.3 * report["weight_bytes_before"]
    # float zero points reproduce the Q4_1 grid the embedded weights lie on: ~free (+0.1%)
    assert perplexity(lm.model, ids, max_length=512, stride=256).value < 1.01 * base


@pytest.mark.parametrize(
    "config",
    [Int8WeightConfig(), Int8DynamicConfig(), Int4WeightConfig(embedding_dtype="bfloat16")],
    ids=["int8-weight", "int8-dynamic", "int4-weight"],
)
def test_quantized_model_keeps_its_parameter_count(config):
    from wattlm.models.fingerprint import parameter_count, weight_bytes

    model = tiny_causal_lm().model
    before, bytes_before = parameter_count(model), weight_bytes(model)
    compress_(model, config)
    assert parameter_count(model) == before  # quantized weights are still parameters
    assert weight_bytes(model) < bytes_before
