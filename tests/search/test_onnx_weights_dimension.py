"""ONNX Runtime's weight formats in the search: dropped when the block size does not fit
the model, passed to the trial's bench config, and torch's precision stages replaced."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.search.candidate import Candidate
from wattlm.search.config import SCREEN
from wattlm.search.evaluate import TrialSpec, bench_config, build_variant
from wattlm.search.space import SearchSpace
from wattlm.search.space_check import ModelShapes, check_space

SMOLLM2 = ModelShapes(
    {
        "model.layers.0.self_attn.q_proj": 576,
        "model.layers.0.mlp.down_proj": 1536,
        "lm_head": 576,
    },
    1536,
)


def _space(weights, start=()):
    return SearchSpace.from_dict(
        {
            "methods": {"none": []},
            "backends": {"torch": {}, "onnxruntime": {"weights": weights}},
            "threads": [1],
            "start": list(start),
        }
    )


def test_block_sizes_that_do_not_divide_the_model_are_dropped():
    space = _space(
        ["fp32", "int4-b64", "int4-b128", "int8-b256"],
        start=[{"method": "none", "backend": "onnxruntime", "weights": "int4-b128"}],
    )
    checked, dropped = check_space(space, SMOLLM2)
    assert dict(checked.backends)["onnxruntime"] == ("fp32", "int4-b64-acc4")
    reason = "does not divide model.layers.0.self_attn.q_proj (576 input features)"
    assert dropped == [
        {"method": None, "backend": "onnxruntime", "param": "weights", "value": v,
         "reason": f"block size {b} {reason}"}
        for v, b in (("int4-b128-acc4", 128), ("int8-b256-acc4", 256))
    ]  # fmt: skip
    assert checked.start == ()  # the start point named a dropped format
    assert any("onnxruntime weights=int4-b128-acc4" in n for n in checked.notes)
    assert check_space(_space(["fp32", "int4-b32"]), SMOLLM2) == (_space(["fp32", "int4-b32"]), [])


def test_a_backend_with_no_format_left_goes_and_the_last_one_is_an_error():
    space = _space(["int4-b128", "int4-b256"])
    checked, dropped = check_space(space, SMOLLM2)
    assert [b for b, _ in checked.backends] == ["torch"] and len(dropped) == 2
    only = SearchSpace.from_dict(
        {"methods": {"none": []}, "backends": {"onnxruntime": {"weights": ["int4-b128"]}}}
    )
    with pytest.raises(WattlmError, match="no backend of the search space can run this model"):
        check_space(only, SMOLLM2)


def test_trial_runs_the_candidates_format_on_the_float_model(tmp_path):
    from wattlm.testing.tiny import tiny_causal_lm

    base = tiny_causal_lm()
    stages = ({"method": "int4-weight", "group_size": 32},)
    cand = Candidate(
        "int4-weight", {"group_size": 32}, stages, "onnxruntime", "int4-b32-acc4", 2, 1
    )
    spec = TrialSpec(1, cand, "screen", SCREEN, "decode-energy", "tiny", "wiki-sample")
    loaded, _, notes = build_variant(base, spec, tmp_path)
    assert loaded is base  # the stage is replaced: ONNX Runtime quantizes the float model
    assert notes == ["stage(s) int4-weight not applied: onnxruntime runs int4-b32-acc4 weights"]
    cfg = bench_config(spec, loaded)
    assert (cfg.backends, cfg.onnx_weights, cfg.batch_sizes) == (
        ("onnxruntime",),
        "int4-b32-acc4",
        (2,),
    )
    torch_spec = TrialSpec(1, Candidate("none", {}, (), "torch", None, 1, 1), "screen", SCREEN,
                           "decode-energy", "tiny", "wiki-sample")  # fmt: skip
    assert bench_config(torch_spec, base).onnx_weights == "fp32"


def test_onnx_int4_trial_is_scored_on_onnx_runtimes_own_logits(tiny_model_dir, text_file, tmp_path):
    pytest.importorskip("onnxruntime_genai")
    from wattlm.models.load import load_model
    from wattlm.report.result import load_result
    from wattlm.search.config import StageSettings
    from wattlm.search.evaluate import BenchEvaluator, register_base_model

    base = load_model(tiny_model_dir)
    register_base_model(tiny_model_dir, "cpu", base)
    stages = ({"method": "int8-weight"},)  # replaced: ONNX Runtime quantizes the float model
    cand = Candidate("int8-weight", {}, stages, "onnxruntime", "int4-b16-acc4", 2, 1)
    settings = StageSettings(
        prompt_tokens=16, new_tokens=4, warmup=0, repeats=2, ppl_max_tokens=200
    )
    spec = TrialSpec(
        3, cand, "screen", settings, "decode-energy", base.spec, str(text_file), meter="estimate",
        ppl_max_length=64, ppl_stride=32, out_dir=str(tmp_path / "trial"),
    )  # fmt: skip
    out = BenchEvaluator()(spec)
    assert out["error"] is None, out["error"]
    result = load_result(tmp_path / "trial" / "screen")
    (run,) = result["runs"]
    assert (run["backend"], run["dtype"]) == ("onnxruntime", "int4-b16-acc4")
    served = result["runtime_quality"]["onnxruntime"]
    assert "ONNX Runtime logits" in served["method"]
    assert served["value"] != result["quality"]["value"]  # 4-bit weights: not torch's figure
    assert out["metrics"]["perplexity"] == pytest.approx(served["value"])
    assert any("int8-weight not applied" in n for n in out["notes"])
    # the bytes as run are the export's (4-bit MatMul weights), not the float model's
    assert out["metrics"]["weight_bytes"] == run["backend_details"]["export"]["disk_bytes"]
    assert out["metrics"]["weight_bytes"] < sum(
        p.numel() * p.element_size() for p in base.model.parameters()
    )
