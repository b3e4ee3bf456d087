import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from wattlm.compress import CompressConfig, compress_, restore_
from wattlm.compress.lowrank import LowRankConfig, LowRankLinear, energy_rank, factorize
from wattlm.compress.qmath import snr_db
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])


def _with_singular_values(out_f: int, in_f: int, sigma: list[float], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(out_f, out_f, generator=g))
    v, _ = torch.linalg.qr(torch.randn(in_f, in_f, generator=g))
    s = torch.zeros(min(out_f, in_f))
    s[: len(sigma)] = torch.tensor(sigma)
    return u[:, : s.numel()] @ torch.diag(s) @ v[:, : s.numel()].T


def _params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "cfg",
    [
        LowRankConfig(),
        LowRankConfig(rank_ratio=None, energy=0.9, targets=("*proj",)),
        LowRankConfig(rank_ratio=0.25, ranks=(("model.layers.0.mlp.up_proj", 7),)),
    ],
)
def test_config_json_round_trip(cfg):
    data = json.loads(json.dumps(cfg.to_dict()))
    assert type(cfg).from_dict(data) == cfg
    assert CompressConfig.from_dict(data) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank_ratio": 0.5, "energy": 0.9}, "exactly one of rank_ratio or energy"),
        ({"rank_ratio": None}, "exactly one of rank_ratio or energy"),
        ({"rank_ratio": 0.0}, r"rank_ratio must be in \(0, 1\]"),
        ({"rank_ratio": 1.5}, r"rank_ratio must be in \(0, 1\]"),
        ({"rank_ratio": None, "energy": 0.0}, r"energy must be in \(0, 1\]"),
        ({"ranks": (("a", 0),)}, "rank must be >= 1"),
    ],
)
def test_invalid_configs(kwargs, match):
    with pytest.raises(WattlmError, match=match):
        LowRankConfig(**kwargs)


def test_svd_is_exact_at_full_rank_and_best_below():
    w = torch.randn(12, 8)
    a, b = factorize(w, 8)
    assert a.shape == (8, 8) and b.shape == (12, 8)
    torch.testing.assert_close(b @ a, w, atol=1e-5, rtol=1e-5)
    w3 = _with_singular_values(12, 8, [5.0, 4.0, 3.0])
    a, b = factorize(w3, 3)
    torch.testing.assert_close(b @ a, w3, atol=1e-5, rtol=1e-5)
    assert snr_db(w, factorize(w, 6)[1] @ factorize(w, 6)[0]) > snr_db(
        w, factorize(w, 3)[1] @ factorize(w, 3)[0]
    )


@pytest.mark.parametrize(("energy", "rank"), [(0.5, 1), (0.8, 2), (0.96, 3), (0.97, 4)])
def test_energy_picks_the_smallest_sufficient_rank(energy, rank):
    sigma = torch.tensor([4.0, 3.0, 2.0, 1.0])  # σ² = 16, 9, 4, 1 of 30
    assert energy_rank(sigma, energy) == rank
    assert energy_rank(sigma, 1.0) == 4
    w = _with_singular_values(16, 16, sigma.tolist())
    assert energy_rank(torch.linalg.svdvals(w), energy) == rank


def test_ratio_mode_replaces_mlps_and_cuts_parameters():
    lm = tiny_causal_lm()
    before = _params(lm.model)
    report = compress_(lm.model, LowRankConfig(rank_ratio=0.5))
    mlp = lm.model.model.layers[0].mlp
    assert isinstance(mlp.up_proj, LowRankLinear) and mlp.up_proj.rank == 32
    assert isinstance(lm.model.model.layers[0].self_attn.q_proj, torch.nn.Linear)
    # each of 6 MLP layers: 64·128 = 8192 -> 32·(64+128) = 6144
    assert before - _params(lm.model) == 6 * (8192 - 6144)
    assert (report["weights_before"], report["weights_after"]) == (6 * 8192, 6 * 6144)
    assert dict(report["config"]["ranks"]) == report["ranks"]
    x = torch.randn(3, 64)
    expected = x @ (mlp.up_proj.b.weight @ mlp.up_proj.a.weight).T
    torch.testing.assert_close(mlp.up_proj(x), expected)


def test_energy_mode_gives_per_layer_ranks_and_skips_no_saving_layers():
    lm = tiny_causal_lm()
    layer0 = lm.model.model.layers[0].mlp
    with torch.no_grad():
        layer0.up_proj.weight.copy_(_with_singular_values(128, 64, [3.0, 2.0, 1.0]))
        layer0.down_proj.weight.copy_(_with_singular_values(64, 128, [1.0] * 10, seed=1))
    ref = layer0.up_proj.weight.clone()
    report = compress_(lm.model, LowRankConfig(rank_ratio=None, energy=0.999))
    assert report["ranks"] == {"model.layers.0.mlp.up_proj": 3, "model.layers.0.mlp.down_proj": 10}
    assert len(report["skipped"]) == 4  # random layers need > 42 of 64: no saving
    assert isinstance(lm.model.model.layers[1].mlp.up_proj, torch.nn.Linear)
    up = lm.model.model.layers[0].mlp.up_proj
    torch.testing.assert_close(up.b.weight @ up.a.weight, ref, atol=1e-5, rtol=1e-5)


def test_no_saving_at_high_ratio_leaves_layers_dense():
    lm = tiny_causal_lm()
    report = compress_(lm.model, LowRankConfig(rank_ratio=0.9))
    assert report["ranks"] == {} and len(report["skipped"]) == 6
    assert "weights >= 8192 dense" in next(iter(report["skipped"].values()))
    mlp = lm.model.model.layers[0].mlp
    assert all(type(m) is torch.nn.Linear for m in (mlp.up_proj, mlp.gate_proj, mlp.down_proj))


def test_energy_mode_with_nothing_factorized_restores_as_a_no_op():
    lm = tiny_causal_lm()
    entry = compress_(lm.model, LowRankConfig(rank_ratio=None, energy=0.999))
    assert entry["config"]["ranks"] == []
    fresh = tiny_causal_lm(seed=2).model
    restore_(fresh, CompressConfig.from_dict(entry["config"]))
    fresh.load_state_dict(lm.model.state_dict(), strict=True)


@pytest.mark.parametrize("energy_mode", [False, True])
def test_saved_model_restores_with_the_recorded_ranks(tmp_path, energy_mode):
    lm = tiny_causal_lm()
    with torch.no_grad():
        lm.model.model.layers[1].mlp.gate_proj.weight.copy_(
            _with_singular_values(128, 64, [2.0] * 5)
        )
    cfg = LowRankConfig(rank_ratio=None, energy=0.99) if energy_mode else LowRankConfig()
    entry = compress_(lm.model, cfg)
    state = {k: v.detach().clone().contiguous() for k, v in lm.model.state_dict().items()}
    assert all(type(v) is torch.Tensor for v in state.values())
    save_file(state, tmp_path / "m.safetensors")
    logged = CompressConfig.from_dict(json.loads(json.dumps(entry["config"])))
    assert logged.ranks  # the handler recorded them
    fresh = tiny_causal_lm(seed=5).model
    restore_(fresh, logged)
    fresh.load_state_dict(load_file(tmp_path / "m.safetensors"), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(IDS).logits, lm.model(IDS).logits)


def test_ratio_mode_restores_from_shapes_but_energy_mode_needs_ranks():
    lm = tiny_causal_lm()
    compress_(lm.model, LowRankConfig())
    fresh = tiny_causal_lm().model
    restore_(fresh, LowRankConfig())  # no recorded ranks: derived from shapes
    fresh.load_state_dict(lm.model.state_dict(), strict=True)
    with pytest.raises(WattlmError, match="cannot be restored"):
        restore_(tiny_causal_lm().model, LowRankConfig(rank_ratio=None, energy=0.9))


def test_save_model_and_load_model_round_trip(tmp_path):
    from wattlm.models.load import load_model, save_model

    lm = tiny_causal_lm()
    entry = compress_(lm.model, LowRankConfig(rank_ratio=0.25))
    lm.compression = [entry]
    back = load_model(str(save_model(lm, tmp_path / "lowrank")))
    assert back.model.model.layers[1].mlp.down_proj.rank == 16
    with torch.no_grad():
        torch.testing.assert_close(back.model(IDS).logits, lm.model(IDS).logits)
