import itertools

import pytest
import torch
from safetensors.torch import load_file, save_file

from wattlm.compress import CompressConfig, CompressContext, compress_, restore_
from wattlm.compress import sparsity as sp
from wattlm.compress.prune import MagnitudePruneConfig, WandaConfig
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])


def _targeted(model):
    return sp.select_linears(model, ("*proj",), ("lm_head", "*embed*"))


def _ctx(samples=8, seq_len=32):
    return CompressContext(calibration=torch.randint(3, 300, (samples, seq_len)))


@pytest.mark.parametrize(
    "cfg",
    [
        MagnitudePruneConfig(),
        MagnitudePruneConfig(sparsity=None, threshold=0.01, scope="layer", targets=("*mlp*",)),
        MagnitudePruneConfig(sparsity=0.7, steps=4, finetune_steps=3, finetune_lr=1e-3),
        WandaConfig(sparsity=0.4, per_output=False, skip=("lm_head",)),
    ],
)
def test_config_json_round_trip(cfg):
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    assert CompressConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sparsity": 1.0}, r"sparsity must be in \[0, 1\)"),
        ({"sparsity": -0.1}, r"sparsity must be in \[0, 1\)"),
        ({"sparsity": 0.5, "threshold": 0.1}, "exactly one of sparsity or threshold, got both"),
        ({"sparsity": None}, "exactly one of sparsity or threshold, got neither"),
        ({"sparsity": None, "threshold": 0.1, "steps": 3}, "used with steps=1"),
        ({"scope": "row"}, "unknown scope"),
        ({"steps": 0}, "steps must be >= 1"),
    ],
)
def test_invalid_magnitude_configs(kwargs, match):
    with pytest.raises(WattlmError, match=match):
        MagnitudePruneConfig(**kwargs)
    with pytest.raises(WattlmError, match=r"sparsity must be in \[0, 1\)"):
        WandaConfig(sparsity=1.0)


def test_global_half_is_exact_and_leaves_embedding_alone():
    lm = tiny_causal_lm()
    report = compress_(lm.model, MagnitudePruneConfig(sparsity=0.5))
    layers = _targeted(lm.model)
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    total = sum(m.weight.numel() for m in layers.values())
    assert abs(zeros - total / 2) <= 1
    assert (report["zeros"], report["total"]) == (zeros, total)
    assert report["sparsity"] == pytest.approx(0.5, abs=1 / total)
    per_layer = [v["sparsity"] for v in report["layers"].values()]
    assert max(per_layer) - min(per_layer) > 0.005  # one global threshold, not per layer
    torch.testing.assert_close(lm.model.lm_head.weight, tiny_causal_lm().model.lm_head.weight)
    keys = [k for k in lm.model.state_dict() if "orig" in k or "mask" in k]
    assert keys == []


def test_global_prunes_the_smallest_magnitudes():
    lm, ref = tiny_causal_lm(), tiny_causal_lm()
    compress_(lm.model, MagnitudePruneConfig(sparsity=0.3))
    pruned, kept = [], []
    for (_, m), (_, r) in zip(
        _targeted(lm.model).items(), _targeted(ref.model).items(), strict=True
    ):
        pruned.append(r.weight[m.weight == 0].abs())
        kept.append(r.weight[m.weight != 0].abs())
    assert torch.cat(pruned).max() <= torch.cat(kept).min()


def test_layer_scope_prunes_each_layer_to_the_ratio():
    lm = tiny_causal_lm()
    report = compress_(lm.model, MagnitudePruneConfig(sparsity=0.3, scope="layer"))
    for name, layer in _targeted(lm.model).items():
        assert int((layer.weight == 0).sum()) == round(0.3 * layer.weight.numel()), name
        assert report["layers"][name]["zeros"] == round(0.3 * layer.weight.numel())


def test_zero_sparsity_prunes_nothing():
    report = compress_(tiny_causal_lm().model, MagnitudePruneConfig(sparsity=0.0))
    assert report["zeros"] == 0 and report["schedule"] == [0.0]


def test_ties_do_not_break_the_exact_count():
    lm = tiny_causal_lm()
    with torch.no_grad():
        for layer in _targeted(lm.model).values():
            layer.weight.fill_(0.25)
    report = compress_(lm.model, MagnitudePruneConfig(sparsity=0.4))
    assert report["zeros"] == round(0.4 * report["total"])


def test_threshold_mode_zeroes_exactly_the_small_weights():
    lm, ref = tiny_causal_lm(), tiny_causal_lm()
    tau = 0.02
    report = compress_(lm.model, MagnitudePruneConfig(sparsity=None, threshold=tau))
    expected = sum(int((m.weight.abs() < tau).sum()) for m in _targeted(ref.model).values())
    assert report["zeros"] == expected > 0
    for m in _targeted(lm.model).values():
        assert (m.weight.abs()[m.weight != 0] >= tau).all()


def test_cubic_schedule_values():
    assert sp.cubic_schedule(0.5, 1) == [0.5]
    s = sp.cubic_schedule(0.8, 4)
    assert s == pytest.approx([0.8 * (1 - (1 - t / 4) ** 3) for t in (1, 2, 3, 4)])
    assert s == pytest.approx([0.4625, 0.7, 0.7875, 0.8])
    assert all(a < b for a, b in itertools.pairwise(s))


def test_iterative_with_finetune_keeps_masks_and_leaves_plain_weights():
    lm, ref = tiny_causal_lm(), tiny_causal_lm()
    cfg = MagnitudePruneConfig(
        sparsity=0.5, steps=3, finetune_steps=2, finetune_samples=8, finetune_seq_len=32
    )
    report = compress_(lm.model, cfg, _ctx())
    assert report["schedule"] == pytest.approx([0.5 * 19 / 27, 0.5 * 26 / 27, 0.5])
    assert report["zeros"] == round(0.5 * report["total"])  # masks held through fine-tune
    assert len(report["finetune_loss_first_last"]) == 2
    assert not lm.model.training
    keys = lm.model.state_dict().keys()
    assert not [k for k in keys if k.endswith(("_orig", "_mask"))]
    layer = lm.model.model.layers[0].mlp.up_proj
    assert isinstance(layer.weight, torch.nn.Parameter) and not layer._forward_pre_hooks
    # fine-tuning changed the kept weights (AdamW moved them)
    kept = layer.weight != 0
    assert not torch.equal(layer.weight[kept], ref.model.model.layers[0].mlp.up_proj.weight[kept])


def test_wanda_keeps_weights_with_large_inputs_where_magnitude_would_not():
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 1, bias=False)

        def forward(self, x):
            return self.proj(x)

    toy = Toy()
    with torch.no_grad():
        toy.proj.weight.copy_(torch.tensor([[1.0, 0.9, 0.2, 0.1]]))
    x = torch.randn(64, 4) * torch.tensor([0.01, 1.0, 10.0, 1.0])
    layers = sp.select_linears(toy, ("*proj",), ())
    norms = sp.input_norms(toy, layers, x, batch_size=16)
    torch.testing.assert_close(norms["proj"], x.norm(dim=0))
    wanda = sp.row_masks(sp.wanda_scores(toy.proj.weight, norms["proj"]), 0.5)
    magnitude = sp.row_masks(toy.proj.weight.abs(), 0.5)
    assert magnitude.tolist() == [[True, True, False, False]]
    assert wanda.tolist() == [[False, True, True, False]]
    sp.wanda_prune_(toy, layers, x, lambda s: sp.row_masks(s, 0.5))  # no block stack: one pass
    assert (toy.proj.weight != 0).tolist() == wanda.tolist()


@pytest.mark.parametrize("per_output", [True, False])
def test_wanda_prunes_exactly_per_row_or_per_layer(per_output):
    lm = tiny_causal_lm()
    cfg = WandaConfig(sparsity=0.5, calibration_samples=4, seq_len=32, per_output=per_output)
    report = compress_(lm.model, cfg, _ctx())
    assert report["zeros"] == report["total"] // 2
    rows = torch.cat([(m.weight == 0).sum(1) for m in _targeted(lm.model).values()])
    if per_output:
        assert set(rows.tolist()) == {32, 64}  # half of in_features 64 or 128
    else:
        assert len(set(rows.tolist())) > 2


def test_wanda_differs_from_magnitude_on_the_tiny_model():
    wanda, magnitude = tiny_causal_lm(), tiny_causal_lm()
    compress_(wanda.model, WandaConfig(calibration_samples=4, seq_len=32), _ctx())
    compress_(magnitude.model, MagnitudePruneConfig(sparsity=0.5, scope="layer"))
    a = wanda.model.model.layers[1].mlp.down_proj.weight == 0
    b = magnitude.model.model.layers[1].mlp.down_proj.weight == 0
    assert (a != b).float().mean() > 0.05


def test_pruned_model_saves_and_loads_strictly(tmp_path):
    lm = tiny_causal_lm()
    entry = compress_(lm.model, MagnitudePruneConfig(sparsity=0.5))
    state = {k: v.detach().clone().contiguous() for k, v in lm.model.state_dict().items()}
    assert all(type(v) is torch.Tensor for v in state.values())
    save_file(state, tmp_path / "m.safetensors")
    fresh = tiny_causal_lm(seed=1).model
    restore_(fresh, CompressConfig.from_dict(entry["config"]))
    fresh.load_state_dict(load_file(tmp_path / "m.safetensors"), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(IDS).logits, lm.model(IDS).logits)


@pytest.mark.assets
@pytest.mark.slow
def test_real_model_wanda_beats_magnitude_at_half():
    from wattlm.assets import is_cached
    from wattlm.bench.quality import perplexity
    from wattlm.data.text import load_text
    from wattlm.models.load import load_model

    if not (is_cached("smollm2-135m") and is_cached("wiki-sample")):
        pytest.skip("asset smollm2-135m not fetched: run `wattlm assets fetch smollm2-135m`")
    lm = load_model("smollm2-135m")
    ids = lm.tokenizer(load_text("wiki-sample", "test")).input_ids[:1024]
    dense = {k: v.clone() for k, v in lm.model.state_dict().items()}
    ctx = CompressContext(tokenizer=lm.tokenizer)
    compress_(lm.model, MagnitudePruneConfig(sparsity=0.5), ctx)
    magnitude = perplexity(lm.model, ids).value
    lm.model.load_state_dict(dense)
    compress_(lm.model, WandaConfig(sparsity=0.5, calibration_samples=8), ctx)
    wanda = perplexity(lm.model, ids).value
    assert wanda < magnitude / 2, (wanda, magnitude)
