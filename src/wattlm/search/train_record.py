"""The end of a training search: decide, then write ``train-search.json`` and the reports.

- **Recommendation**: among trials that reached the target (the default included), the
  least energy to target, with ties and their break by :func:`wattlm.search.pareto.recommend`
  (the rules ``wattlm optimize`` uses: overlapping 95% intervals, then better quality, then
  fewer trained parameters). A trial is measured once, so its interval is its figure alone
  unless the energy source gave a band.
- **Pareto front**: energy spent vs best quality, over the trials that were not pruned.
- **Ratio**: the default's energy to target over the recommendation's, both measured in
  this run.
- **What the search cost**: every trial's training and evaluation joules, pruned trials
  included, and after how many training runs the saving per run pays it back.
- **The command**: ``wattlm train finetune …`` with the recommended options and the steps
  it took to reach the target.

Example:
    >>> command_line({"optimizer": "sgd", "lr": 3e-4, "gradient_checkpointing": False},
    ...              model="minilm-l6", data="movie-sentiment", steps=40)
    'wattlm train finetune --model minilm-l6 --data movie-sentiment --optimizer sgd --lr 0.0003 --no-gradient-checkpointing --max-steps 40 --out runs/finetune-recommended'
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from wattlm.search.pareto import Choice, pareto_front, recommend, ties


def command_line(
    params: dict[str, Any],
    *,
    model: str,
    data: str,
    steps: int,
    extra: dict[str, Any] | None = None,
    recipe: str = "finetune",
) -> str:
    """The ``wattlm train RECIPE`` command that trains ``params`` for ``steps`` steps
    (``model`` is the teacher of ``distill``)."""
    head = "--teacher" if recipe == "distill" else "--model"
    parts = [f"wattlm train {recipe}", f"{head} {model}", f"--data {data}"]
    for key, value in {**(extra or {}), **params}.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, float):
            parts.append(f"{flag} {value:.4g}")
        else:
            parts.append(f"{flag} {value}")
    parts += [f"--max-steps {steps}", f"--out runs/{recipe}-recommended"]
    return " ".join(parts)


def _quality_key(q: float, higher: bool) -> float:
    return -q if higher else q


def decide(s: Any, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Recommendation, ties, front, ratio and search cost from the trial records."""
    higher = s.higher
    feasible = [t for t in trials if t["feasible"]]
    choices = [
        Choice(
            number=t["number"],
            objective=t["energy_to_target_j"],
            interval=(t["energy_to_target_j"], t["energy_to_target_j"]),
            quality=_quality_key(t["quality_best"], higher),
            memory=float(t.get("trainable_params") or 0),
        )
        for t in feasible
    ]
    chosen, tied, why = recommend(choices)
    ran = [t for t in trials if t["state"] in ("reached", "not_reached")]  # all evaluated
    points = [(t["energy_j"], _quality_key(t["quality_best"], higher)) for t in ran]
    front = sorted(ran[i]["number"] for i in pareto_front(points))
    for t in trials:
        t["pareto"] = t["number"] in front
    among = set(front) | ({chosen} if chosen is not None else set())
    default = trials[0]
    by_number = {t["number"]: t for t in trials}
    pick = by_number.get(chosen)
    ratio = None
    if pick is not None and default["feasible"] and pick["energy_to_target_j"] > 0:
        ratio = default["energy_to_target_j"] / pick["energy_to_target_j"]
    training = sum(t["energy_j"] for t in trials)
    evaluation = sum(t["eval_energy_j"] for t in trials)
    pruned = [t for t in trials if t["state"] == "pruned"]
    payback = None
    if pick is not None and default["feasible"]:
        saving = default["energy_to_target_j"] - pick["energy_to_target_j"]
        payback = (training + evaluation) / saving if saving > 0 else None
    return {
        "recommended": chosen,
        "why": why,
        "tied_with": tied,
        "ties": ties(choices, among=among),
        "pareto": front,
        "ratio": ratio,
        "search_cost": {
            "energy_j": training + evaluation,
            "training_energy_j": training,
            "eval_energy_j": evaluation,
            "pruned_energy_j": sum(t["energy_j"] + t["eval_energy_j"] for t in pruned),
            "trials": len(trials),
            "pruned": len(pruned),
            "reached": len(feasible),
            "payback_runs": payback,
        },
    }


def finish(s: Any) -> dict[str, Any]:
    """Decide, write ``train-search.json`` (schema-validated) and the reports; return it."""
    from wattlm._files import write_json
    from wattlm._version import __version__
    from wattlm.report.result import validate_result

    cfg = s.cfg
    trials = s.records()
    d = decide(s, trials)
    by_number = {t["number"]: t for t in trials}
    pick = by_number.get(d["recommended"])
    command = None
    if pick is not None:
        extra: dict[str, Any] = {"seq_len": cfg.seq_len}
        if cfg.recipe == "distill":
            extra.update(student=cfg.student, temperature=cfg.temperature, alpha=cfg.alpha)
        if cfg.max_train_samples is not None:
            extra["max_train_samples"] = cfg.max_train_samples
        if cfg.threads is not None:
            extra["threads"] = cfg.threads
        if cfg.seed:
            extra["seed"] = cfg.seed
        command = command_line(
            pick["params"], model=cfg.model, data=cfg.data, steps=pick["steps"], extra=extra,
            recipe=cfg.recipe,
        )  # fmt: skip
    notes = list(s.notes)
    notes.append(
        "energy to target counts the training steps up to the evaluation that reached it; "
        "evaluations are counted in the search's cost, not in a trial's energy to target"
    )
    notes.append(
        f"each trial's learning-rate schedule spans its cap ({cfg.max_samples} samples); the "
        "command trains the recommended options for the steps the trial needed, with the "
        "schedule over those steps"
    )
    if not trials[0]["feasible"]:
        notes.append("the default configuration did not reach the target within the cap: no ratio")
    sources = sorted({t["energy_source"] for t in trials if t["energy_source"]})
    record = {
        "schema_version": 1,
        "kind": "train-search",
        "wattlm_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": cfg.to_dict(),
        "target": {
            "metric": s.metric,
            "value": cfg.target,
            "higher_is_better": s.higher,
            "eval_split": "test",
            "eval_max_samples": cfg.eval_max_samples,
        },
        "energy_source": "+".join(sources) or None,
        "trials": trials,
        "default": 0,
        "recommended": d["recommended"],
        "why": d["why"],
        "ties": d["ties"],
        "pareto": d["pareto"],
        "ratios": {"energy_to_target_default_over_recommended": d["ratio"]},
        "search_cost": d["search_cost"],
        "recommended_command": command,
        "search": {
            "study_name": s.study_name,
            "storage": s.storage,
            "sampler": cfg.sampler,
            "pruner": cfg.pruner,
            "energy_prune": cfg.energy_prune,
            "space": s.space.to_dict(),
            "trials_asked": len(trials) - 1,
        },
        "notes": notes,
        "elapsed_s": round(time.monotonic() - s.started, 3),
    }
    validate_result(record, source="train-search record")
    write_json(s.out / "train-search.json", record)
    from wattlm.report.train_search_report import write_reports

    write_reports(record, s.out)
    return record
