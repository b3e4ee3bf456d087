import pytest
import torch

from wattlm.compress import CompressConfig, CompressContext, compress_
from wattlm.compress import sparsity as sp
from wattlm.compress.heal import HealConfig
from wattlm.compress.prune import MagnitudePruneConfig
from wattlm.compress.quantize import Int8WeightConfig
from wattlm.compress.structured import FfnPruneConfig
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm

FAST = {"steps": 20, "lr": 1e-3, "batch_size": 4, "samples": 8, "seq_len": 32}


def _ctx(lm, text_file):
    return CompressContext(tokenizer=lm.tokenizer, calibration_data=str(text_file))


def _targeted(model):
    return sp.select_linears(model, ("*proj",), ("lm_head", "*embed*"))


def _zeros(model):
    return {name: layer.weight == 0 for name, layer in _targeted(model).items()}


@torch.no_grad()
def _loss(model, ids):
    return float(model(input_ids=ids, labels=ids).loss)


@pytest.mark.parametrize(
    "cfg",
    [
        HealConfig(),
        HealConfig(steps=5, lr=1e-4, keep_sparsity=False, max_time_s=30, precision="bf16"),
        HealConfig(batch_size=2, seq_len=16, samples=2, seed=3),
    ],
)
def test_config_json_round_trip(cfg):
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    assert CompressConfig.from_dict(cfg.to_dict()) == cfg


def test_yaml_float_without_a_dot_is_read_as_a_number(tmp_path):
    from wattlm.compress.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("stages:\n  - {method: heal, steps: 200, lr: 5e-5, keep_sparsity: true}\n")
    (stage,) = load_recipe(path).stages
    assert stage == HealConfig(steps=200, lr=5e-5)  # YAML 1.1 reads 5e-5 as a string


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"steps": 2.5}, "steps must be an integer >= 1"),
        ({"lr": 0}, "lr must be > 0"),
        ({"lr": "fast"}, "lr must be a number"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"seq_len": 1}, "seq_len must be an integer >= 2"),
        ({"samples": 2, "batch_size": 4}, r"samples \(2\) must be at least batch_size \(4\)"),
        ({"keep_sparsity": "yes"}, "keep_sparsity must be true or false"),
        ({"max_time_s": 0}, "max_time_s must be > 0"),
        ({"precision": "fp16"}, "unknown precision 'fp16'.*fp32, bf16"),
        ({"meter": "watts"}, "unknown meter 'watts'"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_invalid_configs(kwargs, match):
    with pytest.raises(WattlmError, match=match):
        HealConfig(**kwargs)


def test_unknown_key_is_refused():
    with pytest.raises(WattlmError, match="unknown key.*epochs.*valid keys"):
        CompressConfig.from_dict({"method": "heal", "epochs": 2})


def test_heal_after_magnitude_pruning_lowers_the_loss_and_keeps_every_zero(text_file):
    lm = tiny_causal_lm()
    ctx = _ctx(lm, text_file)
    compress_(lm.model, MagnitudePruneConfig(sparsity=0.5), ctx)
    zeros = _zeros(lm.model)
    weights = {n: m.weight.detach().clone() for n, m in _targeted(lm.model).items()}
    ids = ctx.calibration_batch(8, 32)
    before = _loss(lm.model, ids)

    report = compress_(lm.model, HealConfig(**FAST), ctx)

    assert _loss(lm.model, ids) < before - 0.3
    assert report["loss_last"] < report["loss_first"]
    after = _zeros(lm.model)
    assert all(torch.equal(after[n], zeros[n]) for n in zeros)  # the same positions, exactly
    changed = [not torch.equal(m.weight, weights[n]) for n, m in _targeted(lm.model).items()]
    assert all(changed)  # the kept weights did train
    assert report["sparsity_after"] == report["sparsity_before"] == pytest.approx(0.5, abs=0.01)
    assert (report["steps"], report["stopped_by"]) == (20, "max_steps")
    assert report["tokens"] == 20 * 4 * 32 and report["time_s"] > 0
    assert report["masked_layers"] == len(zeros) and "notes" not in report
    # the model is handed back as it came: eval mode, KV cache on, no gradients left
    assert not lm.model.training and lm.model.config.use_cache
    assert all(p.grad is None for p in lm.model.parameters())


def test_without_keep_sparsity_the_zeros_drift():
    lm = tiny_causal_lm()
    ctx = CompressContext(calibration=torch.randint(3, 300, (8, 32)))
    compress_(lm.model, MagnitudePruneConfig(sparsity=0.5), ctx)
    zeros = _zeros(lm.model)
    report = compress_(lm.model, HealConfig(**FAST, keep_sparsity=False), ctx)
    after = _zeros(lm.model)
    assert sum(int(after[n].sum()) for n in after) < sum(int(zeros[n].sum()) for n in zeros) / 2
    assert report["sparsity_after"] < report["sparsity_before"] - 0.25
    assert report["masked_layers"] == 0


def test_heal_after_structured_pruning_trains_the_smaller_model(text_file):
    lm = tiny_causal_lm()
    ctx = _ctx(lm, text_file)
    compress_(lm.model, FfnPruneConfig(ratio=0.5, importance="l2"), ctx)
    shapes = {n: tuple(p.shape) for n, p in lm.model.named_parameters()}
    assert shapes["model.layers.0.mlp.up_proj.weight"] == (64, 64)  # from 128
    ids = ctx.calibration_batch(8, 32)
    before = _loss(lm.model, ids)

    report = compress_(lm.model, HealConfig(**FAST), ctx)  # keep_sparsity, but no zeros

    assert _loss(lm.model, ids) < before - 0.3
    assert {n: tuple(p.shape) for n, p in lm.model.named_parameters()} == shapes
    assert report["sparsity_before"] is None and report["masked_layers"] == 0
    assert any("no zero weights to keep" in note for note in report["notes"])


def test_max_time_stops_after_the_first_step():
    lm = tiny_causal_lm()
    ctx = CompressContext(calibration=torch.randint(3, 300, (8, 32)))
    report = compress_(lm.model, HealConfig(**FAST, max_time_s=1e-9), ctx)
    assert (report["steps"], report["stopped_by"]) == (1, "max_time")


def test_quantized_model_is_refused_before_any_work(text_file):
    lm = tiny_causal_lm()
    ctx = _ctx(lm, text_file)
    compress_(lm.model, Int8WeightConfig(), ctx)
    with pytest.raises(WattlmError, match="already quantized.*prune → heal → quantize"):
        compress_(lm.model, HealConfig(**FAST), ctx)
    assert ctx.calibration is None  # no calibration text was read


def test_prune_heal_int8_recipe_saves_and_reloads(tmp_path, text_file):
    from wattlm.compress.recipe import Recipe, apply_recipe
    from wattlm.models.load import load_model, save_model

    lm = tiny_causal_lm(seed=1)
    recipe = Recipe.from_dict(
        {
            "calibration_data": str(text_file),
            "stages": [
                {"method": "magnitude-prune", "sparsity": 0.5},
                {"method": "heal", **FAST},
                {"method": "int8-weight"},
            ],
        }
    )
    lm.compression = apply_recipe(lm.model, recipe, tokenizer=lm.tokenizer)
    assert [s["method"] for s in lm.compression] == ["magnitude-prune", "heal", "int8-weight"]
    heal = lm.compression[1]
    assert heal["sparsity_after"] == heal["sparsity_before"]
    # the kept zeros survive quantization: a zero weight quantizes to exactly zero
    layer = lm.model.model.layers[0].mlp.up_proj
    assert float((layer.qweight == 0).float().mean()) >= 0.45

    back = load_model(str(save_model(lm, tmp_path / "m")))
    assert back.compression == lm.compression
    ids = torch.tensor([[3, 14, 15, 92, 65]])
    with torch.no_grad():
        assert torch.equal(back.model(ids).logits, lm.model(ids).logits)


def test_heal_reports_its_energy_and_the_meter_that_measured_it():
    lm = tiny_causal_lm()
    ctx = CompressContext(calibration=torch.randint(3, 300, (8, 32)))
    report = compress_(lm.model, HealConfig(**{**FAST, "steps": 3}, meter="estimate"), ctx)
    assert report["energy_j"] > 0
    assert report["energy_source"].startswith("estimate:")
    assert report["steps"] == 3


def test_heal_with_the_null_meter_reports_no_energy():
    lm = tiny_causal_lm()
    ctx = CompressContext(calibration=torch.randint(3, 300, (8, 32)))
    report = compress_(lm.model, HealConfig(**{**FAST, "steps": 1}, meter="null"), ctx)
    assert report["energy_j"] is None
    assert report["energy_source"] == "unavailable"
