import pytest
import torch
from safetensors.torch import load_file, save_file

from wattlm.compress import CompressConfig, CompressContext, compress_, restore_
from wattlm.compress import sparsity as sp
from wattlm.compress.prune_nm import NMSparsityConfig, densify_
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])


def _targeted(model):
    return sp.select_linears(model, ("*proj",), ("lm_head", "*embed*"))


def _ctx():
    return CompressContext(calibration=torch.randint(3, 300, (4, 32)))


@pytest.mark.parametrize(
    "cfg",
    [
        NMSparsityConfig(),
        NMSparsityConfig(n=1, m=8, criterion="wanda", calibration_samples=4, seq_len=16),
        NMSparsityConfig(semi_structured=True, targets=("*mlp*",)),
    ],
)
def test_config_json_round_trip(cfg):
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    assert CompressConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 4, "m": 4}, "1 <= n < m"),
        ({"n": 0, "m": 4}, "1 <= n < m"),
        ({"criterion": "random"}, "unknown criterion"),
        ({"n": 4, "m": 8, "semi_structured": True}, "only for 2:4"),
    ],
)
def test_invalid_configs(kwargs, match):
    with pytest.raises(WattlmError, match=match):
        NMSparsityConfig(**kwargs)


def test_m_not_dividing_in_features_fails_before_any_work():
    lm, ref = tiny_causal_lm(), tiny_causal_lm()
    with pytest.raises(WattlmError, match="m=3 does not divide the input features"):
        compress_(lm.model, NMSparsityConfig(n=1, m=3))
    for (_, a), (_, b) in zip(
        _targeted(lm.model).items(), _targeted(ref.model).items(), strict=True
    ):
        assert torch.equal(a.weight, b.weight)


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (2, 8)])
def test_pattern_holds_on_every_group(n, m):
    lm, ref = tiny_causal_lm(), tiny_causal_lm()
    report = compress_(lm.model, NMSparsityConfig(n=n, m=m))
    assert report["pattern"] == f"{n}:{m}"
    assert report["sparsity"] == pytest.approx(1 - n / m)
    assert "no speedup" in report["note"]
    for (name, layer), (_, orig) in zip(
        _targeted(lm.model).items(), _targeted(ref.model).items(), strict=True
    ):
        groups = layer.weight.reshape(layer.out_features, -1, m)
        assert ((groups != 0).sum(-1) == n).all(), name
        # the kept ones are the n largest |w| of their group
        o = orig.weight.abs().reshape(layer.out_features, -1, m)
        kept_min = torch.where(groups != 0, o, torch.inf).amin(-1)
        dropped_max = torch.where(groups == 0, o, -torch.inf).amax(-1)
        assert (kept_min >= dropped_max).all(), name


def test_wanda_criterion_keeps_top_wanda_scores_in_sequential_order():
    lm, ref, magnitude = tiny_causal_lm(), tiny_causal_lm(), tiny_causal_lm()
    ctx = _ctx()
    ids = ctx.calibration_batch(4, 32)
    compress_(lm.model, NMSparsityConfig(criterion="wanda", calibration_samples=4, seq_len=32), ctx)
    compress_(magnitude.model, NMSparsityConfig())
    original = _targeted(ref.model)
    dense_norms = sp.input_norms(ref.model, original, ids)  # what block 0 sees
    hybrid = tiny_causal_lm().model  # block 0 pruned, block 1 dense: what block 1 sees
    hybrid.model.layers[0].load_state_dict(lm.model.model.layers[0].state_dict())
    pruned_norms = sp.input_norms(hybrid, _targeted(hybrid), ids)
    for name, norms in [
        ("model.layers.0.mlp.down_proj", dense_norms),
        ("model.layers.1.self_attn.q_proj", pruned_norms),
        ("model.layers.1.mlp.down_proj", pruned_norms),
    ]:
        expected = sp.nm_mask(sp.wanda_scores(original[name].weight, norms[name]), 2, 4)
        got = lm.model.get_submodule(name).weight != 0
        assert torch.equal(got, expected), name
        assert (got != (magnitude.model.get_submodule(name).weight != 0)).any()
    name = "model.layers.1.self_attn.q_proj"  # the one-pass dense norms would differ here
    one_pass = sp.nm_mask(sp.wanda_scores(original[name].weight, dense_norms[name]), 2, 4)
    assert not torch.equal(lm.model.get_submodule(name).weight != 0, one_pass)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_semi_structured_needs_cuda_and_refuses_before_work():
    lm, ref = tiny_causal_lm(), tiny_causal_lm()
    with pytest.raises(WattlmError, match="CUDA GPU in float16/bfloat16"):
        compress_(lm.model, NMSparsityConfig(semi_structured=True))
    assert torch.equal(
        lm.model.model.layers[0].mlp.up_proj.weight, ref.model.model.layers[0].mlp.up_proj.weight
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_semi_structured_on_cuda_matches_dense_and_densifies():
    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("needs sm80+")
    dense = tiny_causal_lm().model.half().cuda()
    sparse = tiny_causal_lm().model.half().cuda()
    compress_(dense, NMSparsityConfig())
    report = compress_(sparse, NMSparsityConfig(semi_structured=True))
    assert report["semi_structured_layers"] + len(report["kept_dense"]) == 14
    x = torch.randint(3, 300, (2, 64), device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(sparse(x).logits, dense(x).logits, atol=2e-2, rtol=2e-2)
    densify_(sparse)
    assert all(type(v) is torch.Tensor for v in sparse.state_dict().values())


def test_nm_model_saves_and_loads_strictly(tmp_path):
    lm = tiny_causal_lm()
    entry = compress_(lm.model, NMSparsityConfig(n=2, m=4))
    state = {k: v.detach().clone().contiguous() for k, v in lm.model.state_dict().items()}
    save_file(state, tmp_path / "m.safetensors")
    fresh = tiny_causal_lm(seed=3).model
    restore_(fresh, CompressConfig.from_dict(entry["config"]))
    fresh.load_state_dict(load_file(tmp_path / "m.safetensors"), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(IDS).logits, lm.model(IDS).logits)
