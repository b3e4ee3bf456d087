"""``train_search`` trials as Ray tasks: the same executor as ``optimize``."""

import json
import os

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'wattlm[ray]')")

from wattlm.report.result import validate_result  # noqa: E402
from wattlm.search.train_config import TrainSearchConfig  # noqa: E402
from wattlm.search.train_search_run import train_search  # noqa: E402
from wattlm.search.train_space import TrainSpace  # noqa: E402
from wattlm.search.train_synthetic import SyntheticTrainEvaluator  # noqa: E402


@pytest.mark.slow
def test_two_ray_workers_train_trials_concurrently(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        space = TrainSpace.from_dict(
            {"dimensions": {"optimizer": ["adamw", "adagrad"], "batch_size": [16, 32]}}
        )
        cfg = TrainSearchConfig(
            target=0.85, n_trials=4, sampler="grid", ray="local", ray_workers=2, threads=1,
            max_samples=2048, eval_every_samples=256,
        )  # fmt: skip
        log = tmp_path / "log.jsonl"
        evaluator = SyntheticTrainEvaluator(delay_s=0.02, log_path=str(log))
        record = train_search(
            cfg, out_dir=tmp_path / "run", evaluator=evaluator, space=space, progress=False
        )
    finally:
        ray.shutdown()
    validate_result(record)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    searched = [e for e in entries if e["number"] > 0]
    assert len({e["pid"] for e in searched}) >= 2, "trials ran in two worker processes"
    assert any(
        a["start"] < b["end"] and b["start"] < a["end"]
        for i, a in enumerate(searched)
        for b in searched[i + 1 :]
    ), "two trials ran at the same time"
    assert len(record["trials"]) == 1 + 4 and record["recommended"] is not None


GOOD = {"optimizer": "adamw", "lr": 1e-4}
HOPELESS = {"optimizer": "sgd", "lr": 1e-5, "batch_size": 16, "gradient_checkpointing": False}


@pytest.mark.slow
def test_the_optuna_pruner_prunes_a_hopeless_trial_run_on_a_ray_worker(tmp_path, check_pruned_cost):
    # four good trials first (one learning curve: batch size and checkpointing change only
    # their joules): the hopeless one (the fifth) is asked only once three of them are told
    # complete, so the median pruner (three start-up trials) has its history
    start = [
        {**GOOD, "batch_size": b, "gradient_checkpointing": c}
        for b in (16, 32)
        for c in (False, True)
    ]
    space = TrainSpace.from_dict(
        {"dimensions": {"optimizer": ["adamw", "sgd"], "lr": [1e-4, 1e-5],
                        "batch_size": [16, 32], "gradient_checkpointing": [False, True]},
         "start": [*start, HOPELESS]}
    )  # fmt: skip
    cfg = TrainSearchConfig(
        target=0.85, n_trials=5, sampler="random", pruner="median", energy_prune=False,
        ray="local", ray_workers=2, threads=1, max_samples=2048, eval_every_samples=256,
    )  # fmt: skip
    log = tmp_path / "log.jsonl"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        record = train_search(
            cfg, out_dir=tmp_path / "run", evaluator=SyntheticTrainEvaluator(log_path=str(log)),
            space=space, progress=False,
        )  # fmt: skip
    finally:
        ray.shutdown()
    validate_result(record)
    trials = {t["number"]: t for t in record["trials"]}
    hopeless = trials[5]
    assert hopeless["params"] == HOPELESS
    assert hopeless["state"] == "pruned" and "pruner" in hopeless["prune_reason"]
    assert hopeless["samples"] == 768  # judged at its third evaluation, not run to its cap
    assert hopeless["energy_j"] > 0 and hopeless["energy_to_target_j"] is None
    assert all(trials[n]["state"] == "reached" for n in (1, 2, 3, 4))
    # it ran on a Ray worker, not in this process
    entries = {e["number"]: e for e in map(json.loads, log.read_text().splitlines())}
    assert entries[5]["pid"] != os.getpid() and entries[5]["stop"] == "pruned"
    # the worker's report reached the real Optuna trial, which the study holds as pruned
    import optuna

    study = optuna.load_study(study_name=record["search"]["study_name"],
                              storage=record["search"]["storage"])  # fmt: skip
    told = {t.user_attrs["number"]: t for t in study.trials}
    assert told[5].state == optuna.trial.TrialState.PRUNED
    assert sorted(told[5].intermediate_values) == [256, 512, 768]
    assert told[5].intermediate_values[768] == pytest.approx(-hopeless["quality_best"])
    assert all(told[n].intermediate_values for n in (1, 2, 3, 4))
    # its joules count in the search's cost exactly like a local pruned trial's
    check_pruned_cost(record, hopeless)
    assert any("median pruner" in n and "Ray trials" in n for n in record["notes"])
