"""The screen's rungs: quality first (no energy bench for a clear quality loser), early stop
of clear energy losers (Optuna PRUNED), adaptive repeats, and records that say so."""

from __future__ import annotations

import math

import optuna
import pytest

from wattlm.report.result import validate_result
from wattlm.search import optimize
from wattlm.search.candidate import Candidate, baseline_candidate
from wattlm.search.config import OptimizeConfig, StageSettings
from wattlm.search.evaluate import BenchEvaluator, TrialSpec, register_base_model
from wattlm.search.loop import values
from wattlm.search.screen import QUALITY_SKIP
from wattlm.search.synthetic import SyntheticEvaluator


@pytest.fixture
def record(synthetic_space, synthetic_config, tmp_path):
    cfg = synthetic_config(synthetic_space, n_trials=24, remeasure=2)
    out = tmp_path / "run"
    rec = optimize(cfg, out_dir=out, evaluator=SyntheticEvaluator(), progress=False)
    return rec, out


def _study(out):
    import json

    name = json.loads((out / "study.json").read_text())["study_name"]
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def test_quality_first_records_no_energy_and_tells_optuna_the_constraint(record):
    rec, out = record
    validate_result(rec, source="optimize record")
    cfg = rec["config"]
    skipped = [t for t in rec["trials"] if t.get("early_stop") == QUALITY_SKIP]
    assert skipped, "the synthetic space has configurations 4% and more over the baseline"
    for t in skipped:
        m = t["metrics"]
        assert m["objective"] is None and m["energy_j_per_token"] is None
        assert m["perplexity_increase"] > cfg["budget"] + cfg["quality_margin"]
        assert t["state"] == "infeasible" and not t["feasible"] and t["error"] is None
        assert t["result_path"] is None and t["stage"] == "screen"
        assert QUALITY_SKIP in t["notes"]
    # weights already scored over the limit: recorded without building or measuring anything
    known = [t for t in skipped if any("perplexity known from trial" in n for n in t["notes"])]
    assert known and all(t["duration_s"] == 0.0 for t in known)
    by_number = {t.user_attrs["number"]: t for t in _study(out).trials}
    for t in skipped:
        if t["duplicate_of"] is not None:
            continue
        trial = by_number[t["number"]]
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.values[:2] == [math.inf, math.inf]  # never NaN
        violation = trial.system_attrs["constraints:perplexity_increase"]
        assert violation == pytest.approx(t["metrics"]["perplexity_increase"] - cfg["budget"])


def test_clear_losers_are_pruned_and_kept_out_of_every_decision(record):
    rec, out = record
    pruned = [t for t in rec["trials"] if t["state"] == "pruned"]
    assert pruned, "torch trials cost far more than 1.5x llama.cpp's in the synthetic figures"
    complete = [
        t["metrics"]["objective"]["median"]
        for t in rec["trials"]
        if t["state"] == "complete" and t["stage"] == "screen"
    ]
    by_number = {t.user_attrs["number"]: t for t in _study(out).trials}
    for t in pruned:
        assert t["early_stop"] == "pruned: dominated after 1 repeat(s)"
        assert t["metrics"]["objective"]["n"] == 1  # the figures it had
        assert not t["feasible"] and t["stage"] == "screen"  # never re-measured
        assert t["number"] not in rec["pareto"] + rec["screen_pareto"]
        assert t["number"] != rec["recommended"]
        assert t["metrics"]["objective"]["median"] > 1.5 * min(complete)
        if t["duplicate_of"] is None:
            assert by_number[t["number"]].state == optuna.trial.TrialState.PRUNED
    assert any("stopped early as clear losers" in n for n in rec["notes"])
    assert any("ended before their energy bench" in n for n in rec["notes"])
    # the rungs save time: the recommendation is still the best feasible full-stage one
    full = [t for t in rec["trials"] if t["stage"] == "full" and t["feasible"]]
    best = min(full, key=lambda t: t["metrics"]["objective"]["median"])
    assert rec["recommended"] == best["number"]


def test_reports_render_pruned_and_unmeasured_trials(record):
    from wattlm.cli.main import main

    rec, out = record
    assert main(["report", str(out)]) == 0
    md = (out / "report.md").read_text()
    skipped = next(t for t in rec["trials"] if t.get("early_stop") == QUALITY_SKIP)
    pruned = next(t for t in rec["trials"] if t["state"] == "pruned")
    assert "pruned (screen)" in md
    assert "energy not measured" in md and "dominated after 1 repeat" in md
    assert "| screen stopped early |" in md
    html = (out / "report.html").read_text()
    assert "pruned: dominated after 1 repeat(s)" in html and QUALITY_SKIP in html
    assert skipped["label"] in html and pruned["label"] in html


def test_values_of_an_unmeasured_trial_are_infinite_not_nan():
    metrics = {"objective": None, "latency_ms_per_token": None, "weight_bytes": 1000}
    assert values({"metrics": metrics}) == [math.inf, math.inf, 1000.0]
    measured = {"objective": {"median": 0.5}, "latency_ms_per_token": None, "weight_bytes": 0}
    assert values({"metrics": measured}) == [0.5, 0.0, 0.0]


def test_screen_specs_carry_the_limit_and_the_threshold(synthetic_space, tmp_path):
    from wattlm.search.state import SearchState

    cfg = OptimizeConfig(space=synthetic_space, time_budget_s=None, threads=2, budget="2%")
    s = SearchState.create(cfg, tmp_path / "run", evaluator=SyntheticEvaluator())
    s.study = optuna.create_study(directions=["minimize"] * 3)
    s.baseline = {"screen_metrics": {"perplexity": 20.0}, "metrics": {"perplexity": 19.0}}
    q8 = Candidate("none", {}, (), "llamacpp", "q8_0", 8, 2)
    spec = s.spec(4, q8, "screen", best_screen=0.02)
    assert spec.quality_limit == pytest.approx(20.0 * 1.03)  # budget 2% + margin 1%
    assert spec.stop_above == pytest.approx(0.03)  # 1.5 x 0.02
    # no early stop at the full stage, not for the baseline, not without a best figure
    assert s.spec(4, q8, "full", best_screen=0.02).stop_above is None
    # the full stage scores quality first against the budget itself (no margin)
    assert s.spec(4, q8, "full").quality_limit == pytest.approx(19.0 * 1.02)
    assert s.spec(0, q8, "full").quality_limit is None
    assert s.spec(4, q8, "screen").stop_above is None
    # off by configuration, and only for the decode-energy objective
    off = OptimizeConfig(space=synthetic_space, time_budget_s=None, threads=2,
                         prune_factor=None, quality_margin=None)  # fmt: skip
    s.cfg = off
    spec = s.spec(4, q8, "screen", best_screen=0.02)
    assert spec.stop_above is None and spec.quality_limit is None
    s.cfg = OptimizeConfig(space=synthetic_space, time_budget_s=None, objective="prefill-energy")
    assert s.spec(4, q8, "screen", best_screen=0.02).stop_above is None


def test_config_checks_the_rung_settings():
    from wattlm.errors import WattlmError

    assert OptimizeConfig(quality_margin="0.5%").quality_margin == 0.005
    with pytest.raises(WattlmError, match="prune factor must be a number above 1"):
        OptimizeConfig(prune_factor=0.9)
    with pytest.raises(WattlmError, match="rel_width"):
        StageSettings(rel_width=0)
    with pytest.raises(WattlmError, match="minimum repeats"):
        StageSettings(min_repeats=1)


# -- the real evaluator on a tiny model -------------------------------------------------------
SETTINGS = StageSettings(
    prompt_tokens=16, new_tokens=4, warmup=0, repeats=4, ppl_max_tokens=200, rel_width=1e-9
)


@pytest.fixture
def base(tiny_model_dir):
    from wattlm.models.load import load_model

    loaded = load_model(tiny_model_dir)
    register_base_model(tiny_model_dir, "cpu", loaded)
    return loaded


def _spec(base, text_file, tmp_path, **kw):
    args = dict(
        number=3, candidate=baseline_candidate(1), stage="screen", settings=SETTINGS,
        objective="decode-energy", model=base.spec, data=str(text_file), meter="estimate",
        ppl_max_length=64, ppl_stride=32, out_dir=str(tmp_path / "trial"),
    )  # fmt: skip
    return TrialSpec(**{**args, **kw})


def test_real_quality_first_skips_the_bench(base, text_file, tmp_path):
    out = BenchEvaluator()(_spec(base, text_file, tmp_path, quality_limit=1.0))
    assert out["error"] is None and out["early_stop"] == QUALITY_SKIP
    assert out["metrics"]["perplexity"] > 1.0 and out["metrics"]["objective"] is None
    assert out["quality"]["tokens"] > 0 and out["timings_s"]["quality_s"] > 0
    assert out["timings_s"]["bench_s"] == 0.0 and out["result_path"] is None
    # within the limit: measured first, then benched, its perplexity kept
    fine = BenchEvaluator()(_spec(base, text_file, tmp_path, quality_limit=1e9))
    assert fine["early_stop"] is None and fine["metrics"]["objective"] is not None
    assert fine["metrics"]["perplexity"] == out["metrics"]["perplexity"]


def test_real_bench_stops_a_clear_loser_after_one_repeat(base, text_file, tmp_path):
    out = BenchEvaluator()(_spec(base, text_file, tmp_path, stop_above=0.0))
    assert out["error"] is None, out["error"]
    assert out["early_stop"] == "pruned: dominated after 1 repeat(s)"
    assert out["metrics"]["objective"]["n"] == 1
    # no threshold: adaptive repeats run to the cap (a 1e-9 relative width is never met)
    full = BenchEvaluator()(_spec(base, text_file, tmp_path))
    assert full["early_stop"] is None and full["metrics"]["objective"]["n"] == 4


def test_reserve_counts_remeasurements_peer_and_recommendation(synthetic_space, tmp_path):
    """Hand-computed: 3 full stages at the baseline's 100 s, the peer again at twice its
    40 s, the recommendation's re-bench without perplexity (100 - 30 s) plus 20 s saving."""
    from wattlm.search.state import SearchState

    cfg = OptimizeConfig(space=synthetic_space, time_budget_s=None, threads=2)
    s = SearchState.create(cfg, tmp_path / "run", evaluator=SyntheticEvaluator())
    s.real = True
    s.baseline = {
        "screen_duration_s": 20.0,
        "full_duration_s": 100.0,
        "timings_s": {"quality_s": 30.0},
    }
    s.peer = {"duration_s": 40.0}
    assert s.estimate_trial_s() == 30.0  # no trial yet: the baseline's screen + 10 s build
    assert s.reserve_s() == pytest.approx(3 * 100 + 80 + (70 + 20))
    s.durations += [10.0, 14.0]
    s.full_durations += [60.0, 80.0]  # measured full stages replace the baseline's
    assert s.estimate_trial_s() == 12.0
    assert s.reserve_s() == pytest.approx(3 * 70 + 80 + (40 + 20))
    s.peer = None
    assert s.reserve_s() == pytest.approx(3 * 70 + (40 + 20))
    # a candidate's own full stage: a slow (1-thread) bench is priced from its own screen,
    # its reused perplexity at the full stages' mean quality time; never below the mean
    s.full_quality_s += [40.0, 44.0]
    slow = {"state": "complete", "early_stop": None, "metrics": {"energy_j_per_token": {"n": 2}},
            "timings_s": {"quality_s": 0.0, "bench_s": 18.0, "other_s": 2.0}}  # fmt: skip
    assert s.candidate_full_s(slow) == pytest.approx(2 + 42 + 18 * 4 * 5 / 3)
    fast = {**slow, "timings_s": {"quality_s": 0.0, "bench_s": 1.0, "other_s": 2.0}}
    assert s.candidate_full_s(fast) == pytest.approx(70.0)  # the mean of the full stages


def _oracle_reference(ids, vocab, window=64, context=32):
    """A reference whose "baseline" gives each next token probability ~1: any real model
    is far worse than it, token by token."""
    import torch

    from wattlm.bench.fidelity import Reference

    windows, rows = [], []
    for start in range(0, len(ids) - window + 1, window):
        w = tuple(ids[start : start + window])
        windows.append(w)
        for j in range(context, window):
            logits = torch.zeros(vocab)
            if j + 1 < window:
                logits[w[j + 1]] = 30.0
            rows.append(torch.log_softmax(logits, -1))
    return Reference(tuple(windows), context, torch.stack(rows).to(torch.float16))


def test_real_quality_scoring_stops_early_when_clearly_over_the_limit(
    base, text_file, tmp_path, monkeypatch
):
    from wattlm.bench.fidelity import save_reference
    from wattlm.search import screen

    ids = base.tokenizer(text_file.read_text()).input_ids
    vocab = base.model.config.vocab_size
    path = save_reference(_oracle_reference(ids, vocab), tmp_path / "ref.safetensors")
    # one window of 31 pairs is enough here (the default asks for 128 tokens)
    monkeypatch.setattr(screen.PairedRung.__init__, "__kwdefaults__", {"z": 4.0, "min_tokens": 16})
    spec = _spec(
        base, text_file, tmp_path, reference_path=str(path),
        baseline_perplexity=1.5, quality_limit=1.5 * 1.03,
    )  # fmt: skip
    out = BenchEvaluator()(spec)
    assert out["error"] is None and out["early_stop"] == QUALITY_SKIP
    quality = out["quality"]
    assert quality["method"] == screen.PAIRED_METHOD and quality["tokens"] == 64 - 32 - 1
    assert any("stopped after 31 tokens" in n for n in out["notes"])
    assert out["metrics"]["perplexity"] == pytest.approx(quality["value"]) and quality["value"] > 10
    # without the baseline's perplexity there is no early stop: scored in full
    full = BenchEvaluator()(
        _spec(base, text_file, tmp_path, reference_path=str(path), quality_limit=1.5 * 1.03)
    )
    assert full["error"] is None, full
    assert full["quality"].get("method") != screen.PAIRED_METHOD
    assert full["quality"]["tokens"] > 31 and full["early_stop"] == QUALITY_SKIP
