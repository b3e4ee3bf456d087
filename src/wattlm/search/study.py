"""The Optuna study behind a search: sampler, storage, resume, and what it remembers.

- **Objectives** (all minimised): the energy objective, latency per token of one sequence,
  and bytes of weights as run. Quality enters as a *constraint*: each finished trial sets
  ``perplexity_increase − budget`` with ``Trial.set_constraint`` (Optuna ≥ 5; the samplers'
  ``constraints_func`` argument is deprecated there), so NSGA-II's constrained domination
  and TPE's feasibility weighting prefer trials within the budget.
- **Storage**: an RDB URL (SQLite by default, inside the run folder). The study's name is
  derived from a hash of everything that changes what a trial measures, so re-running
  the same command continues the same study (``load_if_exists``).
- **What survives a kill**: each finished trial carries its whole record (metrics, paths)
  in its user attributes; the baseline, the peer, re-measured (full-stage) figures and
  perplexities reused across trials live in the study's user attributes. Trials left
  ``RUNNING`` by a killed process are marked ``FAIL`` on resume and asked again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wattlm.search.candidate import Candidate

#: NSGA-II population: small, so that evolution starts within a short search
POPULATION = 8
TPE_STARTUP = 6
DIRECTIONS = ("minimize", "minimize", "minimize")  # energy, latency, memory
STALE_NOTE = "wattlm_stale"


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def make_sampler(name: str, seed: int, grid_size: int = 0) -> Any:
    """The Optuna sampler for ``nsga2``, ``tpe``, ``grid`` or ``random``."""
    optuna = _optuna()
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=POPULATION, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=TPE_STARTUP, seed=seed)
    if name == "grid":

        class AskTellGridSampler(optuna.samplers.GridSampler):
            """Optuna's grid sampler calls ``study.stop()`` when the grid is exhausted, which
            only works inside ``study.optimize``; the loop caps the trials at the grid size
            itself, so that call is skipped."""

            def after_trial(self, study, trial, state, values) -> None:
                return None

            def grid_params(self, grid_id: int) -> dict[str, Any]:
                """The point a trial with this ``grid_id`` stands for (it may have been
                killed before its parameters were suggested)."""
                return dict(zip(self._param_names, self._all_grids[grid_id], strict=True))

        return AskTellGridSampler({"candidate": list(range(grid_size))}, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(
    name: str,
    storage: str,
    sampler: Any,
    *,
    directions: tuple[str, ...] = DIRECTIONS,
    pruner: Any = None,
) -> Any:
    """Create the study, or load it when one of that name exists in ``storage``.

    ``directions`` default to optimize's three objectives; ``pruner`` (single-objective
    studies only) judges intermediate values (``wattlm train search``).
    """
    optuna = _optuna()
    return optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        directions=list(directions),
        load_if_exists=True,
    )


def make_pruner(name: str) -> Any:
    """The Optuna pruner ``none``, ``median``, ``successive-halving`` or ``hyperband``."""
    optuna = _optuna()
    pruners = {
        "none": optuna.pruners.NopPruner,
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
        "successive-halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
    }
    return pruners[name]()


def claim_folder(out: Any, study_name: str, storage: str) -> None:
    """Write ``out/study.json`` naming the study, or refuse a folder that holds another one
    (different options or space), so a re-run with the same options resumes."""
    import json
    from pathlib import Path

    from wattlm._files import write_json
    from wattlm.errors import WattlmError

    marker = Path(out) / "study.json"
    if marker.is_file():
        known = json.loads(marker.read_text(encoding="utf-8"))
        if known.get("study_name") != study_name:
            raise WattlmError(
                f"{out} holds another search (different options or space)",
                hint="pass a new --out, or the same options to resume that search",
            )
    write_json(marker, {"study_name": study_name, "storage": storage})


def fail_stale_trials(
    study: Any, finish: Callable[[Any, dict[str, Any]], None] | None = None
) -> list[int]:
    """Settle trials left ``RUNNING`` by a killed process; returns their Optuna numbers.

    A trial whose record was saved before the kill (its work done, only Optuna's ``tell``
    lost) is told again from that record through ``finish(trial, record)``: asking it
    again would measure the point twice. Any other is marked ``FAIL`` and its parameters
    enqueued again (none when the kill came before any was chosen). (One driver per study: a ``RUNNING`` trial at start-up cannot belong to
    a live process.)
    """
    optuna = _optuna()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in running:
        rec = t.user_attrs.get("record")
        if rec is not None and finish is not None:
            finish(optuna.trial.Trial(study, t._trial_id), rec)
            continue
        study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        params = dict(t.params)
        if not params and "grid_id" in t.system_attrs and hasattr(study.sampler, "grid_params"):
            params = study.sampler.grid_params(t.system_attrs["grid_id"])
        if rec is None and params:  # killed before any parameter: nothing to ask again
            study.enqueue_trial(params, user_attrs={STALE_NOTE: t.number})
    return [t.number for t in running]


def finished_records(study: Any) -> dict[int, dict[str, Any]]:
    """Records of finished search trials (by wattlm trial number), full-stage figures merged."""
    records: dict[int, dict[str, Any]] = {}
    attrs = study.user_attrs
    for t in study.get_trials(deepcopy=False):
        rec = t.user_attrs.get("record")
        if rec is not None and t.state.is_finished():
            records[rec["number"]] = dict(rec)
    for number, rec in records.items():
        full = attrs.get(f"full:{number}")
        if full is not None:
            records[number] = merge_full(rec, full)
    return records


def merge_full(rec: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    """A record whose headline figures become the full stage's (screen figures kept)."""
    out = dict(rec)
    out.update(
        stage="full",
        metrics=full["metrics"],
        feasible=full["feasible"],
        state=full["state"],
        error=full.get("error"),
        result_path=full.get("result_path"),
        duration_s=rec["duration_s"] + full.get("duration_s", 0.0),
    )
    if "early_stop" in full:
        out["early_stop"] = full["early_stop"]
    if full.get("timings_s") is not None:
        out["screen_timings_s"] = rec.get("timings_s")
        out["timings_s"] = full["timings_s"]
    return out


def candidate_of(rec: dict[str, Any]) -> Candidate:
    return Candidate.from_dict(rec["candidate"])


def quality_key(stage: str, cand: Candidate) -> str:
    import hashlib

    return f"quality:{stage}:" + hashlib.sha256(cand.weights_key().encode()).hexdigest()[:16]
