"""The real evaluator on a tiny model: variants, GGUF round trip, reused perplexity, failures."""

import importlib.util

import pytest
import torch

from wattlm.report.result import load_result
from wattlm.search.candidate import Candidate
from wattlm.search.config import StageSettings
from wattlm.search.evaluate import BenchEvaluator, TrialSpec, register_base_model

needs_llamacpp = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None, reason="xllamacpp is not installed"
)
SETTINGS = StageSettings(prompt_tokens=16, new_tokens=4, warmup=0, repeats=2, ppl_max_tokens=200)


@pytest.fixture
def base(tiny_model_dir):
    from wattlm.models.load import load_model

    loaded = load_model(tiny_model_dir)
    register_base_model(tiny_model_dir, "cpu", loaded)
    return loaded


def _spec(base, text_file, cand, tmp_path, **kw):
    args = dict(
        number=3, candidate=cand, stage="screen", settings=SETTINGS, objective="decode-energy",
        model=base.spec, data=str(text_file), meter="estimate", ppl_max_length=64, ppl_stride=32,
        out_dir=str(tmp_path / "trial"),
    )  # fmt: skip
    return TrialSpec(**{**args, **kw})


def test_torch_variant_is_compressed_benched_and_saved(base, text_file, tmp_path):
    stages = ({"method": "int8-weight"},)
    cand = Candidate("int8-weight", {}, stages, "torch", None, 2, 1)
    out = BenchEvaluator()(_spec(base, text_file, cand, tmp_path))
    assert out["error"] is None
    m = out["metrics"]
    assert m["perplexity"] > 1 and m["objective"] == m["energy_j_per_token"]
    assert m["objective"]["n"] == 2 and len(m["objective"]["ci95"]) == 2
    assert m["weight_bytes"] < sum(p.numel() * 4 for p in base.model.parameters())
    result = load_result(tmp_path / "trial" / "screen")
    assert result["runs"][0]["batch_size"] == 2 and result["runs"][0]["threads"] == 1
    assert out["result_path"] == str(tmp_path / "trial" / "screen" / "result.json")
    # the baseline model itself was not touched
    assert type(base.model.model.layers[0].mlp.up_proj) is torch.nn.Linear


def test_reused_perplexity_is_not_measured_again(base, text_file, tmp_path):
    cand = Candidate("none", {}, (), "torch", None, 1, 1)
    given = {
        "metric": "perplexity", "value": 123.0, "data": "x", "split": "test", "backend": "torch",
        "dtype": "float32", "tokens": 10, "max_length": 64, "stride": 32,
    }  # fmt: skip
    out = BenchEvaluator()(_spec(base, text_file, cand, tmp_path, quality=given, quality_from=1))
    assert out["metrics"]["perplexity"] == 123.0
    assert any("reused" in n for n in out["notes"])


def test_a_failing_stage_is_an_outcome_not_an_exception(base, text_file, tmp_path):
    stages = ({"method": "int4-weight", "group_size": 256},)  # wider than the tiny rows
    cand = Candidate("int4-weight", {"group_size": 256}, stages, "torch", None, 1, 1)
    out = BenchEvaluator()(_spec(base, text_file, cand, tmp_path))
    assert out["error"] and out["metrics"]["objective"] is None


@needs_llamacpp
def test_llamacpp_variant_runs_the_exported_file(base, text_file, tmp_path):
    stages = ({"method": "int4-weight", "group_size": 32},)  # dropped: llama.cpp quantizes
    cand = Candidate("int4-weight", {"group_size": 32}, stages, "llamacpp", "q8_0", 1, 1)
    out = BenchEvaluator()(_spec(base, text_file, cand, tmp_path))
    assert out["error"] is None, out["error"]
    gguf = tmp_path / "trial" / "model.gguf"
    assert out["metrics"]["weight_bytes"] == gguf.stat().st_size
    result = load_result(tmp_path / "trial" / "screen")
    assert result["runs"][0]["backend"] == "llamacpp"
    assert result["model"]["path"] == str(gguf)
    assert any("not applied" in n for n in out["notes"])


@needs_llamacpp
def test_dequantized_gguf_weights_match_transformers_loading(base, tmp_path):
    import copy

    from wattlm.export.gguf_weights import load_gguf_weights_
    from wattlm.export.gguf_writer import export_gguf
    from wattlm.models.load import load_model

    path = export_gguf(base.model, base.tokenizer, tmp_path / "m.gguf", qtype="q4_0")
    ours = copy.deepcopy(base.model)
    load_gguf_weights_(ours, path)
    theirs = load_model(str(path)).model.state_dict()
    for name, tensor in ours.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    # and they are the quantized values, not the float ones
    q = ours.model.layers[0].mlp.up_proj.weight
    assert not torch.equal(q, base.model.model.layers[0].mlp.up_proj.weight)
