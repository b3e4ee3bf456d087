"""The search end to end with a synthetic evaluator: record, constraints, front, ties, resume."""

import json

import pytest

from wattlm.errors import WattlmError
from wattlm.report.result import validate_result
from wattlm.search import optimize
from wattlm.search.loop import tried
from wattlm.search.synthetic import SyntheticEvaluator


def _front_brute_force(record):
    """Feasible full-stage trials no other one beats on energy and perplexity (all pairs)."""
    pts = [
        t for t in record["trials"]
        if t["stage"] == "full" and t["feasible"] and t["duplicate_of"] is None
    ]  # fmt: skip

    def key(t):
        return (t["metrics"]["objective"]["median"], t["metrics"]["perplexity"])

    return sorted(
        t["number"]
        for t in pts
        if not any(
            all(a <= b for a, b in zip(key(o), key(t), strict=True)) and key(o) != key(t)
            for o in pts
        )
    )


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random", "grid"])
def test_record_is_valid_and_decisions_follow_the_figures(
    sampler, synthetic_space, synthetic_config, tmp_path
):
    cfg = synthetic_config(synthetic_space, sampler=sampler, n_trials=14, remeasure=3)
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(), progress=False)
    validate_result(record)
    saved = json.loads((tmp_path / "run" / "optimize.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == cfg.to_dict()
    trials = {t["number"]: t for t in record["trials"]}
    assert record["baseline"] == 0 and trials[0]["stage"] == "full"
    assert trials[0]["params"]["method"] == "none" and trials[0]["batch_size"] == 1
    assert tried(record) == 14
    assert record["pareto"] == _front_brute_force(record)
    assert all(trials[n]["pareto"] for n in record["pareto"])
    chosen = trials[record["recommended"]]
    assert chosen["feasible"] and chosen["stage"] == "full"
    # the recommendation has the lowest energy, or is tied with the lowest
    full = [t for t in record["trials"] if t["stage"] == "full" and t["feasible"]]
    lowest = min(full, key=lambda t: t["metrics"]["objective"]["median"])
    assert chosen is lowest or sorted([chosen["number"], lowest["number"]]) in record["ties"]
    assert record["peer"]["label"] == "llama.cpp default (Q4_1 file, batch 1)"
    assert record["ratios"]["tokens_per_joule_vs_baseline"] > 1
    assert record["budget"]["limit"] == pytest.approx(record["budget"]["baseline"] * 1.02)


def test_an_infeasible_trial_is_never_recommended_however_cheap(
    synthetic_space, synthetic_config, tmp_path
):
    # the start point (llama.cpp q4_0, batch 8, 2 threads) is the cheapest configuration of
    # the synthetic space, and 3% worse in perplexity: over the 2% budget
    cfg = synthetic_config(synthetic_space, n_trials=10, remeasure=5)
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(), progress=False)
    trials = {t["number"]: t for t in record["trials"]}
    cheapest = min(
        (t for t in record["trials"] if t["metrics"]["objective"]),
        key=lambda t: t["metrics"]["objective"]["median"],
    )
    assert cheapest["params"].get("qtype") == "q4_0"
    assert cheapest["state"] == "infeasible" and not cheapest["feasible"]
    assert cheapest["metrics"]["perplexity_increase"] > 0.02
    assert record["recommended"] != cheapest["number"]
    assert trials[record["recommended"]]["feasible"]
    infeasible = {t["number"] for t in record["trials"] if not t["feasible"]}
    assert not infeasible & set(record["pareto"])
    assert not any(infeasible & set(pair) for pair in record["ties"])


def test_an_all_infeasible_search_recommends_the_baseline(synthetic_config, tmp_path):
    space = tmp_path / "bad.yaml"
    space.write_text(
        "methods:\n  none: []\nbackends: {llamacpp: {qtype: [q4_0]}}\nbatch_sizes: [8]\n"
        "threads: [2]\n"
    )
    record = optimize(
        synthetic_config(str(space), n_trials=3),
        out_dir=tmp_path / "run",
        evaluator=SyntheticEvaluator(),
        progress=False,
    )
    assert record["recommended"] == 0
    assert any("no configuration beat the baseline" in n for n in record["notes"])


def test_overlapping_intervals_are_reported_as_ties(synthetic_config, tmp_path):
    # three group sizes of int4 cost the same energy (within ±2%) at ±10% intervals
    space = tmp_path / "int4.yaml"
    space.write_text(
        "methods:\n  int4-weight:\n    stages: [{method: int4-weight, group_size: $g}]\n"
        "    params: {g: [32, 64, 128]}\nbackends: {torch: {}}\nbatch_sizes: [8]\n"
        "threads: [2]\n"
    )
    cfg = synthetic_config(str(space), sampler="grid", n_trials=3, remeasure=3)
    record = optimize(
        cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(spread=0.1), progress=False
    )
    assert sorted(map(sorted, record["ties"])) == [[1, 2], [1, 3], [2, 3]]
    assert any("tied on energy" in n for n in record["notes"])
    assert record["recommended"] in (1, 2, 3)


def test_failed_and_duplicate_trials_are_recorded_not_remeasured(
    synthetic_space, synthetic_config, tmp_path
):
    log = tmp_path / "log.jsonl"
    cfg = synthetic_config(synthetic_space, sampler="random", n_trials=40, remeasure=1)
    evaluator = SyntheticEvaluator(fail_methods=("cast",), log_path=str(log))
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=evaluator, progress=False)
    trials = record["trials"]
    failed = [t for t in trials if t["state"] == "failed"]
    assert failed and all(t["error"] and not t["feasible"] for t in failed)
    assert all(t["number"] not in record["pareto"] for t in failed)
    dups = [t for t in trials if t["duplicate_of"] is not None]
    assert dups, "40 random trials over this space repeat some configurations"
    evaluated = {(e["number"], e["stage"]) for e in _log(log)}
    assert all((t["number"], "screen") not in evaluated for t in dups)
    for t in dups:
        original = next(o for o in trials if o["number"] == t["duplicate_of"])
        assert original["candidate"]["backend"] == t["candidate"]["backend"]


def test_time_budget_stops_asking(synthetic_space, synthetic_config, tmp_path):
    cfg = synthetic_config(synthetic_space, n_trials=50, time_budget_s=3, remeasure=1)
    record = optimize(
        cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(delay_s=0.2), progress=False
    )
    assert len(record["trials"]) < 1 + 50
    assert record["search"]["stop_reason"].startswith("time budget")
    assert record["elapsed_s"] < 8


def test_rerun_continues_the_study_without_measuring_again(
    synthetic_space, synthetic_config, tmp_path
):
    log = tmp_path / "log.jsonl"
    evaluator = SyntheticEvaluator(log_path=str(log))
    first = optimize(
        synthetic_config(synthetic_space, n_trials=5),
        out_dir=tmp_path / "run",
        evaluator=evaluator,
        progress=False,
    )
    n_first = len(_log(log))
    second = optimize(
        synthetic_config(synthetic_space, n_trials=9),  # n_trials does not change the study
        out_dir=tmp_path / "run",
        evaluator=evaluator,
        progress=False,
    )
    again = _log(log)[n_first:]
    assert tried(second) == 9
    last = first["trials"][-1]["number"]
    assert all(e["number"] > last for e in again if e["stage"] == "screen")
    assert not any(e["number"] == 0 for e in again)  # the baseline is not measured twice
    old = {t["number"]: t["screen_metrics"] for t in first["trials"]}
    assert all(
        old[t["number"]] == t["screen_metrics"] for t in second["trials"] if t["number"] in old
    )


def test_a_folder_holding_another_search_is_refused(synthetic_space, synthetic_config, tmp_path):
    run = tmp_path / "run"
    optimize(
        synthetic_config(synthetic_space, n_trials=2),
        out_dir=run,
        evaluator=SyntheticEvaluator(),
        progress=False,
    )
    with pytest.raises(WattlmError, match="holds another search"):
        optimize(
            synthetic_config(synthetic_space, n_trials=2, budget="1%"),
            out_dir=run,
            evaluator=SyntheticEvaluator(),
            progress=False,
        )


def test_screen_only_decisions_when_nothing_is_remeasured(
    synthetic_space, synthetic_config, tmp_path
):
    record = optimize(
        synthetic_config(synthetic_space, n_trials=6, remeasure=0),
        out_dir=tmp_path / "run",
        evaluator=SyntheticEvaluator(),
        progress=False,
    )
    validate_result(record)
    assert record["search"]["decision_stage"] == "screen"
    assert all(t["stage"] == "screen" for t in record["trials"][1:])
    assert record["recommended"] is not None
    assert record["ratios"]["tokens_per_joule_vs_peer"] is None  # the peer is full-stage only


def _small_space(tmp_path):
    """2 methods x 1 backend x 2 batch sizes x 1 thread: a space of 4 configurations."""
    space = tmp_path / "small.yaml"
    space.write_text(
        "methods: {none: [], bf16: [{method: cast, dtype: bfloat16}]}\n"
        "backends: {torch: {}}\nbatch_sizes: [1, 8]\nthreads: [1]\n"
    )
    return space


def test_n_trials_counts_distinct_configurations_not_asks(synthetic_config, tmp_path):
    # 2 methods x 1 backend x 2 batch sizes x 1 thread: 4 configurations, so a random
    # sampler repeats itself; repeats are answered from their records and not counted
    space = _small_space(tmp_path)
    cfg = synthetic_config(str(space), sampler="random", n_trials=3, remeasure=1, seed=3)
    record = optimize(cfg, out_dir=tmp_path / "a", evaluator=SyntheticEvaluator(), progress=False)
    assert tried(record) == 3
    assert record["search"]["stop_reason"] == "3 configurations tried"

    # more trials than configurations (the baseline is one of the 4): asks end at 5 x 8
    cfg = synthetic_config(str(space), sampler="random", n_trials=8, remeasure=1)
    record = optimize(cfg, out_dir=tmp_path / "b", evaluator=SyntheticEvaluator(), progress=False)
    assert len(record["trials"]) == 1 + 5 * 8
    assert tried(record) <= 4
    assert "kept proposing configurations already measured" in record["search"]["stop_reason"]


def test_a_sampler_that_repeats_itself_is_sent_to_unmeasured_configurations(
    synthetic_config, tmp_path, monkeypatch
):
    import optuna

    from wattlm.search import study as st
    from wattlm.search.explore import EXPLORE_AFTER

    # a sampler that only ever proposes bf16 at batch 8 (as NSGA-II does once it settles)
    def stuck(name, seed, grid_size=0):
        fixed = {"method": "bf16", "batch_size": 8}
        return optuna.samplers.PartialFixedSampler(fixed, optuna.samplers.RandomSampler(seed))

    monkeypatch.setattr(st, "make_sampler", stuck)
    space = _small_space(tmp_path)
    cfg = synthetic_config(str(space), sampler="random", n_trials=3, remeasure=1, seed=1)
    record = optimize(cfg, out_dir=tmp_path / "a", evaluator=SyntheticEvaluator(), progress=False)
    # every configuration but the baseline tried, each after EXPLORE_AFTER repeats
    assert tried(record) == 3 and record["search"]["stop_reason"] == "3 configurations tried"
    assert len(record["trials"]) == 1 + 3 + 2 * EXPLORE_AFTER
    drawn = [t for t in record["trials"] if any("drawn at random" in n for n in t["notes"])]
    # two distinct configurations the sampler never proposed (the baseline runs 2 threads
    # or more, so "none" at batch 1 on 1 thread is a configuration of its own)
    picked = {(t["params"]["method"], t["batch_size"]) for t in drawn}
    assert len(drawn) == 2 and len(picked) == 2
    assert picked < {("none", 1), ("none", 8), ("bf16", 1)}
    assert any("2 unmeasured configuration(s) were drawn at random" in n for n in record["notes"])
