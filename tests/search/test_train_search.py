"""``train_search`` on synthetic trials: the cheapest configuration is found, the grid is
enumerated exactly, hopeless trials are pruned and their joules counted, bad input fails
before any training."""

import json

import pytest

from wattlm.errors import WattlmError
from wattlm.report.result import validate_result
from wattlm.search.train_config import TrainSearchConfig
from wattlm.search.train_monitor import TrialMonitor, projected_energy_j
from wattlm.search.train_search_run import train_search
from wattlm.search.train_space import TrainSpace, load_train_space
from wattlm.search.train_synthetic import SyntheticTrainEvaluator, energy_to_target

SMALL = {
    "dimensions": {
        "optimizer": ["adamw", "sgd"],
        "lr": {"low": 1e-5, "high": 1e-3, "grid": [3e-5, 1e-4, 3e-4]},
        "batch_size": [16, 32],
        "train_layers": ["all", "freeze-embeddings", "lora"],
        "precision": ["fp32", "bf16"],
    }
}


def _cfg(**kw) -> TrainSearchConfig:
    base = dict(target=0.85, max_samples=4096, eval_every_samples=256, n_trials=10)
    return TrainSearchConfig(**{**base, **kw})


def _by_number(record):
    return {t["number"]: t for t in record["trials"]}


def _search(tmp_path, space: TrainSpace, **cfg):
    """A synthetic train search of ``space`` into ``tmp_path`` (``cfg`` over :func:`_cfg`)."""
    return train_search(
        _cfg(**cfg), out_dir=tmp_path, evaluator=SyntheticTrainEvaluator(), space=space,
        progress=False,
    )  # fmt: skip


def test_grid_search_finds_the_known_cheapest_configuration(tmp_path):
    space = TrainSpace.from_dict(SMALL)
    record = _search(tmp_path, space, sampler="grid", n_trials=1000)
    validate_result(record)
    exact = {
        json.dumps(p, sort_keys=True): energy_to_target(p, 0.85, 4096, 256) for p in space.grid()
    }
    best_key = min((k for k, e in exact.items() if e is not None), key=exact.get)
    chosen = _by_number(record)[record["recommended"]]
    assert json.dumps(chosen["params"], sort_keys=True) == best_key
    assert chosen["energy_to_target_j"] == pytest.approx(exact[best_key])
    # the default (trial 0) is measured in the same run, never pruned, and gives the ratio
    default = record["trials"][0]
    assert default["params"] == space.default_point() and default["state"] == "reached"
    ratio = record["ratios"]["energy_to_target_default_over_recommended"]
    assert ratio == pytest.approx(default["energy_to_target_j"] / chosen["energy_to_target_j"])
    assert ratio > 1.5
    command = record["recommended_command"]
    assert command.startswith("wattlm train finetune --model minilm-l6")
    assert f"--max-steps {chosen['steps']}" in command
    assert "--precision bf16" in command
    assert (tmp_path / "report.md").read_text().count("★") == 1
    assert "<svg" in (tmp_path / "report.html").read_text()


def test_grid_sampler_enumerates_the_space_exactly(tmp_path):
    space = TrainSpace.from_dict(
        {
            "dimensions": {
                "optimizer": ["adamw", "sgd", "adagrad"],
                "batch_size": [16, 32],
                "train_layers": ["all", "lora"],
                "lora_rank": [4, 8],
            }
        }
    )
    grid = space.grid()
    assert len(grid) == 3 * 2 * (1 + 2)  # lora_rank only varies under LoRA
    record = _search(tmp_path, space, sampler="grid", n_trials=100, energy_prune=False)
    asked = [json.dumps(t["params"], sort_keys=True) for t in record["trials"][1:]]
    assert len(asked) == len(set(asked)) == len(grid)
    assert set(asked) == {json.dumps(p, sort_keys=True) for p in grid}
    assert record["search"]["trials_asked"] == len(grid)


def test_a_hopeless_trial_is_pruned_and_its_energy_counted(tmp_path, check_pruned_cost):
    space = TrainSpace.from_dict(
        {"dimensions": {"optimizer": ["adamw", "sgd"], "lr": [1e-4, 1e-5]},
         "start": [{"optimizer": "adamw", "lr": 1e-4}, {"optimizer": "sgd", "lr": 1e-5}]}
    )  # fmt: skip
    record = _search(tmp_path, space, sampler="random", n_trials=2)
    trials = _by_number(record)
    good, hopeless = trials[1], trials[2]
    assert good["state"] == "reached" and good["params"] == {"optimizer": "adamw", "lr": 1e-4}
    assert hopeless["params"] == {"optimizer": "sgd", "lr": 1e-5}
    assert hopeless["state"] == "pruned" and "projected" in hopeless["prune_reason"]
    assert 0 < hopeless["energy_j"] < good["energy_to_target_j"]  # stopped early
    assert hopeless["samples"] < 4096
    total = check_pruned_cost(record, hopeless)
    saving = trials[0]["energy_to_target_j"] - good["energy_to_target_j"]
    assert record["search_cost"]["payback_runs"] == pytest.approx(total / saving)


def test_without_energy_pruning_the_hopeless_trial_runs_to_its_cap(tmp_path):
    space = TrainSpace.from_dict(
        {"dimensions": {"optimizer": ["sgd"], "lr": [1e-5]}, "start": [{"optimizer": "sgd"}]}
    )
    record = _search(tmp_path, space, sampler="random", n_trials=1, energy_prune=False)
    trial = record["trials"][1]
    assert trial["state"] == "not_reached" and not trial["feasible"]
    assert trial["samples"] == 4096 and trial["energy_to_target_j"] is None


def test_the_optuna_pruner_judges_intermediate_quality(tmp_path):
    record = _search(
        tmp_path, TrainSpace.from_dict(SMALL), sampler="random", n_trials=12, pruner="median",
        energy_prune=False,
    )  # fmt: skip
    reasons = [t["prune_reason"] for t in record["trials"] if t["state"] == "pruned"]
    assert reasons and all("pruner" in r for r in reasons)
    assert any("median pruner" in n and "this process" in n for n in record["notes"])


def test_monitor_stops_at_target_and_projects_linearly():
    m = TrialMonitor(target=0.8, higher=True, eval_every=2, best_energy_j=None)
    qualities = iter([0.6, 0.81])
    stops = [m.step(5.0, 4, lambda: next(qualities)) for _ in range(4)]
    assert stops == [None, None, None, "reached"]
    assert m.energy_to_target_j == 20.0 and m.samples == 16
    curve = [{"energy_j": 10.0, "quality": 30.0}, {"energy_j": 20.0, "quality": 25.0}]
    assert projected_energy_j(curve, target=20.0, higher=False) == pytest.approx(30.0)
    assert projected_energy_j(curve[::-1], target=20.0, higher=False) == float("inf")


def test_the_pruners_verdict_counts_from_the_third_evaluation():
    seen = []

    def pruner(samples, quality):  # always "prune", and remembers what it was told
        seen.append((samples, quality))
        return True

    m = TrialMonitor(target=0.9, higher=True, eval_every=1, best_energy_j=None, pruner=pruner)
    stops = [m.step(1.0, 8, lambda q=q: q) for q in (0.5, 0.6, 0.7)]
    assert stops == [None, None, "pruned"] and "pruner" in m.prune_reason
    assert seen == [(8, 0.5), (16, 0.6), (24, 0.7)]  # every evaluation reported


@pytest.mark.parametrize(
    "space, message",
    [
        ({"dimensions": {}}, "is empty"),
        ({"name": "x"}, "is empty"),
        ({"dimensions": {"batch_size": []}}, "is empty"),
        ({"dimensions": {"optimizer": ["adamw", "lion"]}}, "unknown optimizer 'lion'"),
        ({"dimensions": {"train_layers": ["all", "top"]}}, "unknown train_layers 'top'"),
        ({"dimensions": {"lr": {"low": 1e-3, "high": 1e-5}}}, "need low < high"),
        ({"dimensions": {"colour": ["red"]}}, "unknown key(s)"),
    ],
)
def test_bad_spaces_fail_with_one_clear_message(space, message):
    with pytest.raises(WattlmError) as err:
        TrainSpace.from_dict(space)
    assert message in str(err.value)


def test_unreachable_targets_are_refused():
    with pytest.raises(WattlmError, match="accuracy is at most 1"):
        TrainSearchConfig(target=1.5, metric="accuracy")
    with pytest.raises(WattlmError, match="perplexity is at least 1"):
        TrainSearchConfig(target=0.9, metric="perplexity")
    with pytest.raises(WattlmError, match="unknown recipe 'qat'"):
        TrainSearchConfig(recipe="qat")


def test_shipped_spaces_load():
    assert len(load_train_space("train-quick").grid()) == 2 * 3 * 2 * 2
    default = load_train_space("train-default")
    assert set(default.values("optimizer")) == {"adamw", "sgd", "adagrad", "adafactor"}
    assert default.start


def test_a_trial_stopped_by_its_time_cap_is_evaluated_at_its_last_step():
    m = TrialMonitor(target=0.9, higher=True, eval_every=4, best_energy_j=None, max_steps=100)
    for _ in range(3):
        assert m.step(1.0, 8, lambda: 0.5) is None  # no evaluation due yet
    m.final(lambda: 0.7)
    out = m.outcome()
    assert out["stop"] == "cap" and out["steps"] == 3 and out["samples"] == 24
    assert out["curve"] == [{"step": 3, "samples": 24, "energy_j": 3.0, "quality": 0.7}]
