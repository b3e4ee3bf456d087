import pytest
import torch

from wattlm.compress import CompressConfig, compress_
from wattlm.compress.precision import CastConfig
from wattlm.errors import WattlmError
from wattlm.models.fingerprint import weight_bytes
from wattlm.testing.tiny import tiny_causal_lm


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_cast_halves_weight_bytes_and_keeps_outputs_close(dtype):
    lm = tiny_causal_lm()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        ref = lm.model(ids).logits
    before = weight_bytes(lm.model)
    compress_(lm.model, CastConfig(dtype=dtype))
    assert lm.model.model.layers[1].self_attn.q_proj.weight.dtype == getattr(torch, dtype)
    assert weight_bytes(lm.model) < 0.55 * before
    with torch.no_grad():
        out = lm.model(ids).logits.float()
    assert torch.allclose(out, ref, atol=0.05, rtol=0.05)


def test_keep_respects_tied_embedding():
    lm = tiny_causal_lm()
    report = compress_(lm.model, CastConfig(dtype="bfloat16", keep=("lm_head",)))
    assert lm.model.lm_head.weight.dtype == torch.float32
    assert lm.model.lm_head.weight is lm.model.model.embed_tokens.weight
    assert lm.model.model.layers[0].mlp.down_proj.weight.dtype == torch.bfloat16
    assert report["method"] == "cast" and report["cast_parameters"] > 0


@pytest.mark.parametrize("keep", [("lm_head",), ("lm_head", "*.embed_tokens", "*.down_proj")])
def test_mixed_precision_model_runs_with_one_stream_dtype(keep):
    """A float32 tied embedding must not feed float32 into bf16 attention (SDPA refuses
    mixed query/key/value dtypes); the kept lm_head still returns float32 logits."""
    lm = tiny_causal_lm()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        ref = lm.model(ids).logits
    compress_(lm.model, CastConfig(dtype="bfloat16", keep=keep))
    lm.model.config._attn_implementation = "sdpa"
    with torch.no_grad():
        out = lm.model(ids).logits
    assert out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=0.05, rtol=0.05)


def test_config_round_trip_and_errors():
    cfg = CastConfig(dtype="float16", keep=("lm_head", "*.embed_tokens"))
    assert CastConfig.from_dict(cfg.to_dict()) == cfg
    assert CompressConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(WattlmError, match="unknown dtype 'int2'"):
        CastConfig(dtype="int2")
    with pytest.raises(WattlmError, match="match no module"):
        compress_(tiny_causal_lm().model, CastConfig(keep=("no_such_module",)))
