"""GPTQ: beats round-to-nearest on the calibration inputs, lands on the qmath grid."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file

from wattlm.compress import CompressConfig, CompressContext, compress_, qmath, restore_
from wattlm.compress.calibrate_hooks import capture_layer_inputs, run_layer
from wattlm.compress.gptq import GptqConfig, gptq_quantize
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm

SAMPLES, SEQ = 8, 64


@pytest.fixture
def calib():
    torch.manual_seed(1)
    return torch.randint(3, 300, (SAMPLES, SEQ))


def _config(**kw) -> GptqConfig:
    return GptqConfig(calibration_samples=SAMPLES, seq_len=SEQ, **kw)


def _linears(model):
    return {
        n: m.weight.detach().clone()
        for n, m in model.model.layers.named_modules()
        if isinstance(m, torch.nn.Linear)
    }


def _fake_quantize(w, zero_point="int", group_size=32):
    if zero_point == "int":
        return qmath.fake_quantize_int4(w, group_size)
    q = qmath.quantize_int4_groupwise_float_zero(w, group_size)
    return qmath.dequantize_int4_float_zero(*q, group_size)


def _rtn_(model, zero_point="int"):
    for w in _linears(model):
        lin = model.model.layers.get_submodule(w)
        lin.weight.data = _fake_quantize(lin.weight.data, zero_point)


@pytest.mark.parametrize(
    "config",
    [
        GptqConfig(),
        GptqConfig(zero_point="int", group_size=64, calibration_samples=4, seq_len=16),
        GptqConfig(bits=8, act_order=True, damp=0.1, skip=("lm_head", "*.o_proj")),
    ],
)
def test_config_round_trips_through_json(config):
    assert type(config).from_dict(config.to_dict()) == config
    assert CompressConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "kw",
    [
        {"bits": 3},
        {"bits": 16},
        {"group_size": 0},
        {"zero_point": "none"},
        {"damp": 0.0},
        {"calibration_samples": 0},
    ],
)
def test_invalid_config_is_refused(kw):
    with pytest.raises(WattlmError):
        GptqConfig(**kw)


def test_group_size_not_dividing_a_layer_fails_before_calibration(tiny_lm):
    before = _linears(tiny_lm.model)
    ctx = CompressContext(tokenizer=tiny_lm.tokenizer)
    with pytest.raises(WattlmError, match="does not divide"):
        compress_(tiny_lm.model, GptqConfig(group_size=48), ctx)  # hidden 64
    assert ctx.calibration is None  # no calibration work was done
    after = _linears(tiny_lm.model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_non_float32_weights_and_unknown_skip_are_refused(tiny_lm, calib):
    with pytest.raises(WattlmError, match="matches no module"):
        compress_(tiny_lm.model, _config(skip=("nonexistent",)), CompressContext(calibration=calib))
    tiny_lm.model.to(torch.bfloat16)
    with pytest.raises(WattlmError, match="float32"):
        compress_(tiny_lm.model, _config(), CompressContext(calibration=calib))


def test_solver_beats_round_to_nearest_on_correlated_inputs():
    torch.manual_seed(0)
    x = torch.randn(512, 128) @ torch.randn(128, 128) + torch.randn(128)  # correlated, offset
    w = torch.randn(48, 128) * 0.02
    h = 2 * x.t() @ x / x.shape[0]

    def err(v):
        return float((x @ (v - w).t()).pow(2).mean())

    for zero_point in ("int", "float"):
        rtn = err(_fake_quantize(w, zero_point))
        for act_order in (False, True):
            q = gptq_quantize(w, h, zero_point=zero_point, act_order=act_order)
            assert err(q) < 0.7 * rtn
    rtn8 = err(qmath.dequantize_int8(*qmath.quantize_int8_per_channel(w)))
    assert err(gptq_quantize(w, h, bits=8)) < 0.7 * rtn8


@pytest.mark.parametrize(("act_order", "zero_point"), [(False, "int"), (True, "float")])
def test_layer_output_error_is_lower_than_round_to_nearest(calib, act_order, zero_point):
    lm = tiny_causal_lm()
    inputs = capture_layer_inputs(lm.model, calib, batch_size=4)
    reference = [y.hidden for y in run_layer(lm.model.model.layers[0], inputs)]
    rtn, gptq = copy.deepcopy(lm.model), lm.model
    _rtn_(rtn, zero_point)
    config = _config(act_order=act_order, zero_point=zero_point)
    report = compress_(gptq, config, CompressContext(calibration=calib))

    def err(model):
        out = run_layer(model.model.layers[0], inputs)
        return sum(float((o.hidden - r).pow(2).sum()) for o, r in zip(out, reference, strict=True))

    assert err(gptq) < 0.9 * err(rtn)
    assert report["quantized_linears"] == 14 and report["output_error_vs_rtn"] < 0.95
    assert report["calibration_tokens"] == SAMPLES * SEQ
    with torch.no_grad():
        logits = tiny_causal_lm().model(calib).logits
        assert qmath.snr_db(logits, gptq(calib).logits) > qmath.snr_db(logits, rtn(calib).logits)


@pytest.mark.parametrize(("act_order", "zero_point"), [(False, "int"), (True, "int")])
def test_int4_weights_requantize_losslessly(tiny_lm, calib, act_order, zero_point):
    before = _linears(tiny_lm.model)
    embed = tiny_lm.model.model.embed_tokens.weight.detach().clone()
    config = _config(act_order=act_order, zero_point=zero_point, skip=("lm_head", "mlp.down_proj"))
    compress_(tiny_lm.model, config, CompressContext(calibration=calib))
    for name, w in _linears(tiny_lm.model).items():
        if name.endswith("down_proj"):
            assert torch.equal(w, before[name])  # skipped
            continue
        assert not torch.equal(w, before[name])
        q, scale, zero = qmath.quantize_int4_groupwise(w, 32)
        again = qmath.dequantize_int4_groupwise(q, scale, zero, 32)
        assert (again - w).abs().max() <= 1e-6 * w.abs().max(), name
        groups = q.view(w.shape[0], -1, 32)  # every group uses both ends of its grid
        assert bool((groups.amin(2) == 0).all() and (groups.amax(2) == 15).all())
        lossy = qmath.fake_quantize_int4(before[name], 32) - before[name]
        assert lossy.abs().max() > 1e-4 * before[name].abs().max()  # the check can fail
    assert torch.equal(tiny_lm.model.model.embed_tokens.weight, embed)


@pytest.mark.parametrize("act_order", [False, True])
def test_float_zero_weights_requantize_losslessly(tiny_lm, calib, act_order):
    before = _linears(tiny_lm.model)
    compress_(tiny_lm.model, _config(act_order=act_order), CompressContext(calibration=calib))
    for name, w in _linears(tiny_lm.model).items():
        q, scale, offset = qmath.quantize_int4_groupwise_float_zero(w, 32)
        again = qmath.dequantize_int4_float_zero(q, scale, offset, 32)
        assert (again - w).abs().max() <= 1e-6 * w.abs().max(), name
        assert (
            _fake_quantize(before[name], "float") - before[name]
        ).abs().max() > 1e-4 * w.abs().max()


@pytest.mark.parametrize(
    ("zero_point", "int4_zero"), [("float", "float"), ("int", "float"), ("int", "int")]
)
def test_gptq_then_int4_weight_stores_the_gptq_weights(tiny_lm, calib, zero_point, int4_zero):
    from wattlm.compress.quantize import Int4WeightConfig

    compress_(tiny_lm.model, _config(zero_point=zero_point), CompressContext(calibration=calib))
    gptq = _linears(tiny_lm.model)
    int4 = Int4WeightConfig(compute_dtype="float32", embedding_dtype=None, zero_point=int4_zero)
    compress_(tiny_lm.model, int4)
    for name, w in gptq.items():
        stored = tiny_lm.model.model.layers.get_submodule(name).dequantize()
        assert (stored - w).abs().max() <= 1e-6 * w.abs().max(), name


def test_int8_weights_requantize_losslessly(tiny_lm, calib):
    compress_(tiny_lm.model, _config(bits=8), CompressContext(calibration=calib))
    for name, w in _linears(tiny_lm.model).items():
        q, scale = qmath.quantize_int8_per_channel(w)
        assert (qmath.dequantize_int8(q, scale) - w).abs().max() <= 1e-6 * w.abs().max(), name
        assert bool((q.abs().amax(1) == 127).all())


def test_calibration_comes_from_the_train_split(tiny_lm, text_file):
    ctx = CompressContext(tokenizer=tiny_lm.tokenizer, calibration_data=str(text_file))
    compress_(tiny_lm.model, GptqConfig(calibration_samples=4, seq_len=32), ctx)
    assert ctx.calibration.shape == (4, 32)


def test_saved_state_dict_loads_into_a_fresh_model(tiny_lm, calib, tmp_path):
    entry = compress_(tiny_lm.model, _config(), CompressContext(calibration=calib))
    state = {k: v.detach().clone().contiguous() for k, v in tiny_lm.model.state_dict().items()}
    assert all(type(v) is torch.Tensor and v.dtype == torch.float32 for v in state.values())
    save_file(state, tmp_path / "model.safetensors")
    fresh = tiny_causal_lm(seed=5).model
    restore_(fresh, CompressConfig.from_dict(entry["config"]))
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(calib).logits, tiny_lm.model(calib).logits)


@pytest.mark.assets
@pytest.mark.slow
def test_real_model_gptq_beats_round_to_nearest():
    from wattlm.assets import is_cached
    from wattlm.bench.quality import perplexity
    from wattlm.data.text import load_text
    from wattlm.models.load import load_model

    for name in ("smollm2-135m", "wiki-sample"):
        if not is_cached(name):
            pytest.skip(f"asset {name} not fetched: run `wattlm assets fetch {name}`")
    lm = load_model("smollm2-135m")
    ids = lm.tokenizer(load_text("wiki-sample", split="test")).input_ids[:2048]
    rtn = copy.deepcopy(lm.model)
    _rtn_(rtn, "int")  # the float-zero grid reproduces this dequantized Q4_1 file exactly
    config = GptqConfig(zero_point="int", calibration_samples=16)
    report = compress_(lm.model, config, CompressContext(lm.tokenizer))
    assert report["quantized_linears"] == 30 * 7 and report["output_error_vs_rtn"] < 0.5
    w = lm.model.model.layers[7].mlp.down_proj.weight.detach()
    assert (qmath.fake_quantize_int4(w, 32) - w).abs().max() <= 1e-6 * w.abs().max()
    ppl_rtn = perplexity(rtn, ids, max_length=512, stride=256).value
    ppl_gptq = perplexity(lm.model, ids, max_length=512, stride=256).value
    assert ppl_gptq < ppl_rtn, (ppl_gptq, ppl_rtn)
