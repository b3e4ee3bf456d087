"""The bench runner end to end on a tiny model, a fake meter with exact energy, local text."""

import json
from pathlib import Path

import pytest
import torch

from wattlm.bench.config import BenchConfig
from wattlm.bench.runner import bench
from wattlm.errors import WattlmError
from wattlm.report.result import validate_result
from wattlm.testing.meters import FakeMeter
from wattlm.testing.tiny import tiny_causal_lm, tiny_classifier


def _config(text_file, **kw):
    base = dict(
        model="tiny-llama",
        data=str(text_file),
        backends=("torch",),
        batch_sizes=(1, 2),
        prompt_tokens=16,
        new_tokens=5,
        warmup=1,
        repeats=3,
        threads=1,
        ppl_max_length=32,
        ppl_stride=16,
        ppl_max_tokens=200,
    )
    return BenchConfig(**{**base, **kw})


def test_result_validates_and_energy_per_token_is_exact(text_file, tmp_path):
    # windows close in order prefill, decode, prefill, decode, ... (2 batch sizes × 3 repeats)
    energies = [
        *(8.0, 2.0, 16.0, 4.0, 32.0, 6.0),  # batch 1
        *(64.0, 16.0, 128.0, 32.0, 256.0, 48.0),  # batch 2
    ]
    meter = FakeMeter(energies_j=energies)
    result = bench(
        _config(text_file),
        model=tiny_causal_lm(),
        meter=meter,
        out_dir=tmp_path / "run",
        progress=False,
    )
    validate_result(result)
    b1, b2 = result["runs"]
    # batch 1: 16 prefill tokens, 4 decode tokens per repeat
    assert b1["prefill"]["energy_j_per_token"]["median"] == pytest.approx(16.0 / 16)
    assert b1["decode"]["energy_j_per_token"]["median"] == pytest.approx(4.0 / 4)
    # batch 2: 32 prefill tokens, 8 decode tokens
    assert b2["prefill"]["energy_j_per_token"]["median"] == pytest.approx(128.0 / 32)
    assert b2["decode"]["energy_j_per_token"]["median"] == pytest.approx(32.0 / 8)
    assert b1["energy_source"] == "fake"
    assert len(b2["samples"]["decode"]) == 3
    tps = [s["time_s"] for s in b1["samples"]["decode"]]
    assert b1["decode"]["tokens_per_s"]["median"] == pytest.approx(sorted(4 / t for t in tps)[1])
    assert result["quality"]["metric"] == "perplexity"
    assert result["quality"]["tokens"] > 100
    assert result["quality"]["stride"] == 16
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["runs"][1]["batch_size"] == 2
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert BenchConfig.from_dict(cfg) == _config(text_file)


def test_carbon_follows_energy(text_file):
    meter = FakeMeter(power_w=100.0)
    result = bench(
        _config(text_file, batch_sizes=(1,), quality=False, grid_intensity_g_per_kwh=360.0),
        model=tiny_causal_lm(),
        meter=meter,
        progress=False,
    )
    dec = result["runs"][0]["decode"]
    ratio = dec["gco2e_per_token"]["median"] / dec["energy_j_per_token"]["median"]
    assert ratio == pytest.approx(360.0 / 3.6e6)
    assert result["quality"] is None
    assert result["carbon"]["grid_intensity_g_per_kwh"] == 360.0


def test_llamacpp_backend_refuses_non_gguf_model(text_file, tmp_path):
    with pytest.raises(WattlmError, match="needs a GGUF file"):
        bench(
            _config(text_file, backends=("llamacpp",), quality=False),
            model=tiny_causal_lm(),
            meter=FakeMeter(power_w=1.0),
            out_dir=tmp_path / "r",
            progress=False,
        )
    assert not (tmp_path / "r").exists()


def test_auto_backend_is_torch_only_for_in_memory_models(text_file):
    result = bench(
        _config(text_file, backends=("auto",), batch_sizes=(1,), quality=False, repeats=1),
        model=tiny_causal_lm(),
        meter=FakeMeter(power_w=1.0),
        progress=False,
    )
    assert [r["backend"] for r in result["runs"]] == ["torch"]


def test_prompt_longer_than_context_fails_before_work(text_file):
    lm = tiny_causal_lm(max_positions=64)
    meter = FakeMeter(power_w=1.0)
    with pytest.raises(WattlmError, match="exceeds the model's context of 64"):
        bench(
            _config(text_file, prompt_tokens=60, new_tokens=8),
            model=lm,
            meter=meter,
            progress=False,
        )
    assert meter.windows_closed == 0


def test_classifier_is_refused(text_file):
    with pytest.raises(WattlmError, match="causal LMs"):
        bench(
            _config(text_file),
            model=tiny_classifier(),
            meter=FakeMeter(power_w=1.0),
            progress=False,
        )


@pytest.mark.parametrize("method", ["builder", "torch"])
def test_onnxruntime_backend_exports_checks_and_measures(text_file, tmp_path, method):
    pytest.importorskip("onnxruntime")
    if method == "builder":
        pytest.importorskip("onnxruntime_genai")
    config = _config(
        text_file,
        backends=("torch", "onnxruntime"),
        batch_sizes=(2,),
        repeats=2,
        quality=False,
        onnx_export_method=method,
    )
    result = bench(config, model=tiny_causal_lm(), meter=FakeMeter(power_w=1.0), progress=False)
    validate_result(result)
    _, ort_run = result["runs"]
    assert ort_run["backend"] == "onnxruntime" and ort_run["dtype"] == "float32"
    export = ort_run["backend_details"]["export"]
    assert export["method"] == method and export["max_abs_logit_diff"] < 1e-3
    assert ort_run["backend_details"]["kv_cache"] == "OrtValue io-binding"
    assert ort_run["decode"]["tokens_per_s"]["median"] > 0
    assert any("ONNX Runtime" in n for n in result["notes"])
    assert not Path(export["path"]).exists()  # scratch export removed


def test_onnxruntime_backend_refuses_non_float32_weights(text_file):
    pytest.importorskip("onnxruntime")
    lm = tiny_causal_lm()
    lm.model.to(torch.bfloat16)
    with pytest.raises(WattlmError, match="runs float32 exports"):
        bench(
            _config(text_file, backends=("onnxruntime",), quality=False),
            model=lm,
            meter=FakeMeter(power_w=1.0),
            progress=False,
        )


def test_unknown_onnx_export_method_is_refused():
    with pytest.raises(WattlmError, match="unknown ONNX export method 'optimum'"):
        BenchConfig(onnx_export_method="optimum")
