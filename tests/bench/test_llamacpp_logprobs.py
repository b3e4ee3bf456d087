"""llama.cpp's own log-probabilities agree with torch on the same weights, and report a
refused window clearly."""

from __future__ import annotations

import pytest
import torch

from wattlm.bench.fidelity import compare, reference_distribution
from wattlm.bench.quality import perplexity
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm

pytest.importorskip("xllamacpp", reason="needs the llamacpp extra (xllamacpp)")

from wattlm.bench.backends.llamacpp_logprobs import LlamaCppLogProbs


@pytest.fixture(scope="module")
def tiny_f32(tmp_path_factory):
    from wattlm.export.gguf_writer import export_gguf

    lm = tiny_causal_lm(seed=4)
    path = export_gguf(lm.model, lm.tokenizer, tmp_path_factory.mktemp("g") / "t.gguf", qtype="f32")
    return lm, path


def test_float32_gguf_scored_by_llama_cpp_matches_torch(tiny_f32):
    lm, path = tiny_f32
    ids = list(range(3, 3 + 96))
    with LlamaCppLogProbs(path, threads=1, window=64) as fn:
        out = fn(ids[:64])
        assert out.shape == (64, lm.model.config.vocab_size)
        assert torch.allclose(out.exp().sum(-1), torch.ones(64), atol=1e-4)
        ref = reference_distribution(lm.model, ids, window=32, context=8)
        fid = compare(ref, fn)
        ppl_cpp = perplexity(fn, ids, max_length=64, stride=32)
    ppl_torch = perplexity(lm.model, ids, max_length=64, stride=32)
    assert fid.kl_mean < 1e-3 and fid.top1_agreement > 0.95
    assert ppl_cpp.tokens == ppl_torch.tokens
    assert ppl_cpp.value == pytest.approx(ppl_torch.value, rel=0.01)


def test_a_window_longer_than_the_context_is_one_clear_error(tiny_f32):
    _, path = tiny_f32
    with (
        LlamaCppLogProbs(path, threads=1, window=16) as fn,
        pytest.raises(WattlmError, match="a scored window holds 1..16 tokens, got 17"),
    ):
        fn(list(range(3, 20)))


@pytest.mark.assets
def test_smollm2_q4_1_perplexity_on_llama_cpp_is_close_to_torch_dequantized():
    from wattlm.data.text import load_text
    from wattlm.models.load import load_model

    lm = load_model("smollm2-135m")
    ids = lm.tokenizer(load_text("wiki-sample", "test")).input_ids[:513]
    with LlamaCppLogProbs(lm.gguf_path, threads=2, window=256) as fn:
        cpp = perplexity(fn, ids, max_length=256, stride=128)
        fid = compare(reference_distribution(lm.model, ids, window=256, context=128), fn)
    torch_ppl = perplexity(lm.model, ids, max_length=256, stride=128)
    # same weights, different arithmetic (llama.cpp quantizes activations in its dot products)
    assert cpp.value == pytest.approx(torch_ppl.value, rel=0.01)
    assert 0.0 < fid.kl_mean < 0.02 and fid.top1_agreement > 0.9


def test_the_served_kv_cache_type_is_the_one_scored(tmp_path):
    """A quantized KV cache changes what llama.cpp computes: the scorer uses the served one."""
    from transformers import LlamaForCausalLM

    from wattlm.export.gguf_writer import export_gguf

    lm = tiny_causal_lm(seed=6)
    config = lm.model.config
    config.num_attention_heads, config.num_key_value_heads, config.head_dim = 2, 1, 32
    torch.manual_seed(6)
    model = LlamaForCausalLM(config).eval()
    path = export_gguf(model, lm.tokenizer, tmp_path / "wide.gguf", qtype="f32")
    ids = list(range(3, 3 + 64))
    with LlamaCppLogProbs(path, threads=1, window=64) as fn:
        plain = fn(ids)
    with LlamaCppLogProbs(path, threads=1, window=64, kv_cache="q4_0", flash_attn="on") as fn:
        quantized = fn(ids)
    assert quantized.shape == plain.shape
    difference = (quantized - plain).abs().max().item()
    assert 1e-5 < difference < 1.0  # 4-bit K and V: measurably different, not garbage
