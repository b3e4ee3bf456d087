"""Issue 11: per-stage breakdown, the up-front budget check, the space checked against the
model, plain progress lines off a terminal, and the peer at the recommendation's batch."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field, replace

import pytest

from wattlm.errors import WattlmError
from wattlm.report.result import validate_result
from wattlm.search import optimize
from wattlm.search.budget import check_time_budget, minimum_budget_s, stage_s
from wattlm.search.config import OptimizeConfig
from wattlm.search.evaluate import TIMING_KEYS, BenchEvaluator, TrialSpec, register_base_model
from wattlm.search.space import load_space
from wattlm.search.space_check import ModelShapes, build_problem, check_space
from wattlm.search.synthetic import SyntheticEvaluator

#: SmolLM2-135M's Linear input widths (hidden 576, MLP 1536), as the check sees them
SMOLLM2 = ModelShapes(
    {
        "model.layers.0.self_attn.q_proj": 576,
        "model.layers.0.self_attn.o_proj": 576,
        "model.layers.0.mlp.up_proj": 576,
        "model.layers.0.mlp.down_proj": 1536,
        "lm_head": 576,
    },
    1536,
)


@dataclass(frozen=True)
class ShapedEvaluator(SyntheticEvaluator):
    """The synthetic evaluator, offering SmolLM2's shapes to the space check."""

    model_shapes: ModelShapes = field(default=SMOLLM2)


# -- per-stage breakdown -------------------------------------------------------------------
def test_every_trial_record_has_the_breakdown_keys(synthetic_space, synthetic_config, tmp_path):
    cfg = synthetic_config(synthetic_space, n_trials=6, remeasure=2)
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(), progress=False)
    validate_result(record)
    for t in [*record["trials"], record["peer"]]:
        assert set(t["timings_s"]) == set(TIMING_KEYS), t["label"]
        assert all(v >= 0 for v in t["timings_s"].values())
    base = record["trials"][0]
    assert set(base["screen_timings_s"]) == set(TIMING_KEYS)
    for t in record["trials"]:
        if t["duplicate_of"] is not None:  # answered from another trial: nothing measured
            assert sum(t["timings_s"].values()) == 0


def test_real_trial_breakdown_names_where_the_time_went(tiny_model_dir, text_file, tmp_path):
    from wattlm.models.load import load_model
    from wattlm.search.candidate import Candidate
    from wattlm.search.config import StageSettings

    base = load_model(tiny_model_dir)
    register_base_model(tiny_model_dir, "cpu", base)
    settings = StageSettings(
        prompt_tokens=16, new_tokens=4, warmup=0, repeats=2, ppl_max_tokens=200
    )
    cand = Candidate("int8-weight", {}, ({"method": "int8-weight"},), "torch", None, 1, 1)
    spec = TrialSpec(
        3, cand, "screen", settings, "decode-energy", tiny_model_dir, str(text_file),
        meter="estimate", ppl_max_length=64, ppl_stride=32, out_dir=str(tmp_path / "t"),
    )  # fmt: skip
    out = BenchEvaluator()(spec)
    assert out["error"] is None
    t = out["timings_s"]
    assert list(t) == list(TIMING_KEYS)
    for key in ("copy_s", "compress_s", "quality_s", "bench_s", "tokenize_s"):
        assert t[key] > 0, key
    # torch runs the model in this process as built: no GGUF, no process, nothing to load
    assert t["export_s"] == 0 and t["process_start_s"] == 0 and t["model_load_s"] < 0.1
    assert sum(t.values()) == pytest.approx(out["seconds"], abs=0.01)


# -- the up-front budget check ---------------------------------------------------------------
def test_budget_estimate_grows_with_what_the_run_must_hold():
    cfg = OptimizeConfig()
    assert stage_s(cfg.full) > stage_s(cfg.screen) > 0
    assert minimum_budget_s(cfg) < cfg.time_budget_s  # the default run fits its own budget
    fewer = minimum_budget_s(OptimizeConfig(remeasure=0, peer=False))
    assert fewer == pytest.approx(minimum_budget_s(cfg) - 2 * stage_s(cfg.full) - 3 * (
        stage_s(cfg.full) + 10.0))  # fmt: skip
    # adaptive repeats: the up-front check counts the fewest a stage may take
    assert stage_s(cfg.screen) == stage_s(replace(cfg.screen, rel_width=None, repeats=2))
    check_time_budget(OptimizeConfig(time_budget_s="none"))  # no budget: nothing to check


def test_too_small_budget_is_one_line_exit_2_with_the_time_needed(tmp_path, capsys):
    from wattlm.cli.main import main

    out = tmp_path / "run"
    assert main(["optimize", "--time-budget", "10s", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "--time-budget 10s cannot hold a search: it needs about 7m10s" in lines[0]
    assert "pass --time-budget 7m10s or more" in lines[0]
    assert captured.out == "" and not (out / "study.db").exists()
    with pytest.raises(WattlmError, match="needs about"):
        check_time_budget(OptimizeConfig(time_budget_s="5m"))
    check_time_budget(OptimizeConfig(time_budget_s="10m"))


# -- the space checked against the model -------------------------------------------------------
def test_group_sizes_that_do_not_divide_the_model_are_dropped():
    assert "576 input features" in build_problem(
        [{"method": "int4-weight", "group_size": 128}], SMOLLM2
    )
    # pruning 5% of 1536 channels, rounded to 8, keeps 1456: not a multiple of 32
    pruned = [{"method": "prune-ffn", "ratio": 0.05}, {"method": "int4-weight", "group_size": 32}]
    assert "1456 input features after pruning" in build_problem(pruned, SMOLLM2)
    pruned[0]["multiple_of"] = 32  # what the shipped spaces ask for
    assert build_problem(pruned, SMOLLM2) is None
    space, dropped = check_space(load_space("default"), SMOLLM2)
    assert dropped == [
        {
            "method": "int4-weight",
            "param": "group_size",
            "value": 128,
            "reason": "group size 128 does not divide model.layers.0.self_attn.q_proj "
            "(576 input features)",
        }
    ]
    assert dict(space.method("int4-weight").params)["group_size"] == (32, 64)
    assert any("group_size=128" in n for n in space.notes)


def test_dropped_choices_are_listed_in_the_record_and_never_tried(
    synthetic_space, synthetic_config, tmp_path
):
    cfg = synthetic_config(synthetic_space, sampler="grid", n_trials=200, remeasure=1)
    evaluator = ShapedEvaluator()
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=evaluator, progress=False)
    dropped = record["search"]["dropped_choices"]
    assert {(d["method"], d["param"], d["value"]) for d in dropped} == {
        ("int4-weight", "group_size", 128),
        ("prune-ffn+int4", None, None),  # the synthetic space prunes without multiple_of
    }
    tried = [t["params"] for t in record["trials"]]
    assert not [p for p in tried if p.get("group_size") == 128]
    assert not [p for p in tried if p["method"] == "prune-ffn+int4"]
    assert any("dropped from the space for this model" in n for n in record["notes"])


# -- progress where output is not a terminal -----------------------------------------------------
def test_plain_lines_one_per_finished_trial_and_per_stage(
    synthetic_space, synthetic_config, tmp_path, capsys
):
    cfg = synthetic_config(synthetic_space, n_trials=8, remeasure=2)
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(), progress=True)
    lines = capsys.readouterr().out.splitlines()  # captured: stdout is not a terminal
    assert all(re.match(r"^\[\d+:\d\d\] ", line) for line in lines), lines
    stages = [
        "baseline (float model, torch, batch 1): screen stage",
        "baseline: full stage",
        "peer: llama.cpp on the model's own Q4_1 file, batch 1",
        "search: screening configurations",
        "re-measuring the best candidates at the full stage",
        "choosing and saving the recommendation",
    ]
    for stage in stages:
        assert sum(line.endswith("] " + stage) for line in lines) == 1, stage
    measured = [
        t for t in record["trials"][1:]
        if t["duplicate_of"] is None and not (t["error"] or "").startswith("incompatible")
    ]  # fmt: skip
    screened = [line for line in lines if re.match(r"^\[\d+:\d\d\] #\d+ ", line)]
    screened = [line for line in screened if not line.endswith("[full]")]
    assert len(screened) == len(measured) > 0
    full = [line for line in lines if line.endswith("[full]")]
    assert len(full) == sum(t["stage"] == "full" for t in record["trials"][1:]) > 0


def test_no_lines_without_progress(synthetic_space, synthetic_config, tmp_path, capsys):
    cfg = synthetic_config(synthetic_space, n_trials=3, remeasure=1)
    optimize(cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(), progress=False)
    assert capsys.readouterr().out == ""


# -- the peer at the recommendation's batch size ------------------------------------------------
def test_peer_is_measured_again_at_the_recommendations_batch(
    synthetic_space, synthetic_config, tmp_path
):
    cfg = synthetic_config(synthetic_space, n_trials=10, remeasure=3)
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(), progress=False)
    validate_result(record)
    chosen = next(t for t in record["trials"] if t["number"] == record["recommended"])
    assert chosen["batch_size"] > 1  # the synthetic space's cheapest feasible ones batch
    same, peer = record["peer_same_batch"], record["peer"]
    assert peer["batch_size"] == 1 and same["batch_size"] == chosen["batch_size"]
    assert same["label"] == f"llama.cpp default (Q4_1 file, batch {chosen['batch_size']})"
    energy = chosen["metrics"]["objective"]["median"]
    ratios = record["ratios"]
    assert ratios["tokens_per_joule_vs_peer_same_batch"] == pytest.approx(
        same["metrics"]["objective"]["median"] / energy
    )
    assert ratios["tokens_per_joule_vs_peer"] == pytest.approx(
        peer["metrics"]["objective"]["median"] / energy
    )
    # batching alone makes the batch-1 ratio larger: the two are not the same figure
    assert ratios["tokens_per_joule_vs_peer"] > ratios["tokens_per_joule_vs_peer_same_batch"]
    # resuming does not measure the peer again
    again = optimize(cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(), progress=False)
    assert again["peer_same_batch"]["metrics"] == same["metrics"]


def test_report_names_both_peer_ratios(synthetic_space, synthetic_config, tmp_path):
    from wattlm.cli.optimize import peer_ratio_names
    from wattlm.report.optimize_plot import pareto_figure
    from wattlm.report.optimize_view import OptimizeView

    cfg = synthetic_config(synthetic_space, n_trials=10, remeasure=3)
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(), progress=False)
    batch = next(t for t in record["trials"] if t["number"] == record["recommended"])["batch_size"]
    md = (tmp_path / "run" / "report.md").read_text()
    assert "(the same batch size)" in md and "(batching plus configuration)" in md
    html = (tmp_path / "run" / "report.html").read_text()
    assert "tokens per joule vs llama.cpp, same batch size" in html
    assert "at batch 1 (batching + configuration)" in html
    names = [t["name"] for t in pareto_figure(OptimizeView(record))["data"]]
    assert "llama.cpp default, batch 1" in names
    assert "llama.cpp default, recommendation's batch size" in names
    assert [k for _, k in peer_ratio_names(record)] == [
        "tokens_per_joule_vs_baseline",
        "tokens_per_joule_vs_peer_same_batch",
        "tokens_per_joule_vs_peer",
    ]
    assert f"same batch size ({batch})" in peer_ratio_names(record)[1][0]


# -- the GGUF cache: exports reused by weights, written atomically --------------------------------
@pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None, reason="xllamacpp is not installed"
)
def test_gguf_export_is_cached_by_weights_and_never_read_half_written(
    tiny_model_dir, text_file, tmp_path
):
    from wattlm.models.load import load_model
    from wattlm.search.candidate import Candidate
    from wattlm.search.config import StageSettings
    from wattlm.search.evaluate import gguf_cache_path

    base = load_model(tiny_model_dir)
    register_base_model(tiny_model_dir, "cpu", base)
    settings = StageSettings(
        prompt_tokens=16, new_tokens=4, warmup=0, repeats=2, ppl_max_tokens=200
    )
    cache = tmp_path / "cache"

    def spec(number, batch, **kw):
        cand = Candidate("none", {}, (), "llamacpp", "q8_0", batch, 1)
        return TrialSpec(
            number, cand, "screen", settings, "decode-energy", tiny_model_dir, str(text_file),
            meter="estimate", ppl_max_length=64, ppl_stride=32,
            out_dir=str(tmp_path / f"t{number}"), cache_dir=str(cache), **kw,
        )  # fmt: skip

    first = spec(1, 1)
    entry = gguf_cache_path(first)
    # a writer killed half-way leaves only its temporary file: never read as an entry
    entry.parent.mkdir(parents=True)
    (entry.parent / f".{entry.name}.999.tmp").write_bytes(b"GGUF half")
    one = BenchEvaluator()(first)
    assert one["error"] is None, one["error"]
    t1 = one["timings_s"]
    assert t1["copy_s"] > 0 and t1["export_s"] > 0 and t1["quality_s"] > 0
    assert t1["process_start_s"] > 0 and t1["model_load_s"] > 0 and t1["bench_s"] > 0
    assert entry.read_bytes() == (tmp_path / "t1" / "model.gguf").read_bytes()
    # the same weights at another batch size, perplexity known: nothing is built again
    two = BenchEvaluator()(spec(2, 2, quality=one["quality"], quality_from=1))
    assert two["error"] is None, two["error"]
    t2 = two["timings_s"]
    assert t2["copy_s"] == 0 and t2["compress_s"] == 0 and t2["quality_s"] < 0.05
    assert (tmp_path / "t2" / "model.gguf").read_bytes() == entry.read_bytes()
    assert two["metrics"]["weight_bytes"] == one["metrics"]["weight_bytes"]
    assert any("exported by wattlm earlier in this search" in n for n in two["notes"])


# -- the baseline's perplexity cached on disk by model fingerprint ------------------------------
def test_baseline_quality_is_cached_on_disk_by_fingerprint(
    synthetic_space, synthetic_config, tmp_path, monkeypatch
):
    import optuna

    from wattlm.search.candidate import Candidate, baseline_candidate
    from wattlm.search.quality_cache import entry_path, read_quality
    from wattlm.search.state import SearchState

    monkeypatch.setenv("WATTLM_CACHE", str(tmp_path / "cache"))
    cfg = synthetic_config(synthetic_space)

    def state(fingerprint):
        s = SearchState.create(cfg, tmp_path / "run", evaluator=SyntheticEvaluator())
        s.model_fingerprint = fingerprint
        s.study = optuna.create_study()
        return s

    s = state("abc")
    spec = s.spec(0, baseline_candidate(2), "screen")
    assert spec.quality is None
    quality = {"metric": "perplexity", "value": 20.2, "tokens": 2048}
    s.remember_quality(spec, {"quality": quality, "error": None})
    key = s._disk_quality_key("screen", baseline_candidate(1))
    assert read_quality(key) == quality
    # a later search of the same model reads it; another model, stage or weights does not
    again = state("abc")
    assert again.spec(0, baseline_candidate(2), "screen").quality == quality
    assert again.spec(0, baseline_candidate(2), "full").quality is None
    q8 = Candidate("none", {}, (), "llamacpp", "q8_0", 1, 2)
    assert again.spec(3, q8, "screen").quality is None
    assert state("other").spec(0, baseline_candidate(2), "screen").quality is None
    # an entry cut short (as by a kill during a non-atomic write) is a miss, not an error
    entry_path(key).write_text('{"key": {"model": "ab')
    assert state("abc").spec(0, baseline_candidate(2), "screen").quality is None
    assert not list(entry_path(key).parent.glob("*.tmp"))
