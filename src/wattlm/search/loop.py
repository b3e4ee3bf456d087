"""The ask/tell loop (screen stage) and the re-measurement of candidates (full stage).

The loop asks Optuna for a trial, resolves it to a :class:`Candidate`, and either

- refuses it (an incompatible combination: recorded, told ``PRUNED``),
- answers it from an earlier trial that runs exactly the same thing (recorded with
  ``duplicate_of``, told the same values: nothing is measured twice), or
- submits it to the executor (this process, or a Ray task) and tells the result when it
  comes back: values (energy, latency, memory) and the quality constraint.

Full-stage measurements run one at a time in this process, never concurrently, so the
figures that decide are not contended.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from wattlm.report.records import TrialRecord
from wattlm.search import screen
from wattlm.search import study as st
from wattlm.search.candidate import Candidate
from wattlm.search.evaluate import breakdown
from wattlm.search.executors import make_executor
from wattlm.search.explore import EXPLORE_AFTER, EXPLORE_ATTR, Explorer
from wattlm.search.progress import describe

if TYPE_CHECKING:
    import optuna

    from wattlm.search.state import SearchState


def _objective(rec: TrialRecord) -> float:
    return rec["metrics"]["objective"]["median"]


def values(rec: TrialRecord) -> list[float]:
    """What Optuna minimises: energy objective, latency per token, bytes of weights.

    A trial ended before its bench (quality first) has no energy or latency: it is told
    ``inf`` for both (worse than anything measured; NaN is refused by Optuna), and its
    constraint says why it lost: NSGA-II ranks infeasible trials by constraint violation
    alone, and its crowding distance treats ``inf`` as the end of the axis.
    """
    m = rec["metrics"]
    inf = float("inf")
    energy = m["objective"]["median"] if m.get("objective") else inf
    if m.get("latency_ms_per_token"):
        latency = m["latency_ms_per_token"]["median"]
    else:
        latency = inf if m.get("objective") is None else 0.0
    return [energy, latency, float(m.get("weight_bytes") or 0)]


def best_screen(s: SearchState, records: dict[int, TrialRecord]) -> float | None:
    """The lowest screen-stage objective among feasible trials so far (the baseline's
    screen figure included): what the early stop of a clear loser compares with."""
    figures = []
    for rec in [s.baseline, *records.values()]:
        metrics = rec.get("screen_metrics")
        if rec["number"] != 0 and (not rec["feasible"] or rec["duplicate_of"] is not None):
            continue
        # re-measured: its record's feasibility is the full stage's; the screen's own here
        full = rec["number"] != 0 and rec["stage"] == "full"
        if full and (rec["state"] in ("failed", "pruned") or not s.budget.holds(metrics or {})):
            continue
        if metrics and metrics.get("objective"):
            figures.append(metrics["objective"]["median"])
    return min(figures) if figures else None


def best_line(s: SearchState, records: dict[int, TrialRecord]) -> str | None:
    pool = [r for r in [s.baseline, *records.values()] if r["feasible"]]
    if not pool:
        return None
    return describe(min(pool, key=_objective), s.unit)


def _enqueue_start(s: SearchState) -> None:
    study = s.study
    if study.user_attrs.get("start_enqueued"):
        return
    if s.grid:
        index = {c.key(): i for i, c in enumerate(s.grid)}
        for cand in s.space.start_candidates():
            if cand.key() in index:
                study.enqueue_trial({"candidate": index[cand.key()]})
    else:
        for params in s.space.start_params():
            study.enqueue_trial(params)
    study.set_user_attr("start_enqueued", True)


def _suggest(s: SearchState, trial: optuna.trial.Trial) -> Candidate:
    if s.grid:
        return s.grid[trial.suggest_categorical("candidate", list(range(len(s.grid))))]
    return s.space.suggest(trial)


#: asks per configuration at most: a sampler that keeps proposing configurations already
#: measured (answered from their records at no cost) ends the search after this many
MAX_ASKS_PER_TRIAL = 5


def tried(record: dict[str, Any]) -> int:
    """The distinct configurations a finished search (``optimize.json``) tried.

    Example:
        >>> tried({"trials": [{"number": 0, "duplicate_of": None, "error": None},
        ...                   {"number": 1, "duplicate_of": 0, "error": None}]})
        0
    """
    return configurations({t["number"]: t for t in record["trials"] if t["number"] > 0})


def configurations(records: dict[int, TrialRecord]) -> int:
    """How many distinct configurations the search has tried: records that are neither
    answers from an earlier trial (``duplicate_of``) nor incompatible combinations.

    Example:
        >>> configurations({1: {"duplicate_of": None, "error": None},
        ...                 2: {"duplicate_of": 1, "error": None},
        ...                 3: {"duplicate_of": None, "error": "incompatible: x"}})
        1
    """
    return sum(
        1
        for r in records.values()
        if r["duplicate_of"] is None and not (r.get("error") or "").startswith("incompatible")
    )


def _can_ask(s: SearchState, tried: int, asked: int) -> bool:
    """Whether to ask once more: ``tried`` distinct configurations (in flight included)
    are fewer than ``n_trials``, the asks stay under :data:`MAX_ASKS_PER_TRIAL` × that, and
    the time left covers one more trial and the reserve."""
    limit = min(s.cfg.n_trials, len(s.grid)) if s.grid else s.cfg.n_trials
    if tried >= limit:
        s.stop_reason = f"{limit} configurations tried"
        return False
    if asked >= MAX_ASKS_PER_TRIAL * limit:
        s.stop_reason = (
            f"{asked} trials asked: the sampler kept proposing configurations already measured"
        )
        return False
    left = s.time_left()
    # the first trial is always asked: a search never ends having tried nothing (the
    # up-front check, wattlm.search.budget, refuses a budget that cannot hold one)
    if asked > 0 and left is not None and left < s.estimate_trial_s() + s.reserve_s():
        s.stop_reason = "time budget (no room for one more trial and the re-measurements)"
        return False
    return True


def _duplicate(
    s: SearchState, records: dict[int, TrialRecord], cand: Candidate
) -> TrialRecord | None:
    key = cand.key()
    if st.candidate_of(s.baseline).key() == key:
        return s.baseline
    same = [
        r
        for r in records.values()
        if r["duplicate_of"] is None and r["number"] > 0 and st.candidate_of(r).key() == key
    ]
    return min(same, key=lambda r: r["number"]) if same else None


def _screen_view(s: SearchState, rec: TrialRecord) -> TrialRecord:
    """An earlier trial's record as its screen stage saw it (duplicates copy this)."""
    metrics = rec.get("screen_metrics") or rec["metrics"]
    out: TrialRecord = {**rec, "metrics": metrics, "stage": "screen"}
    if rec["state"] == "pruned" or rec.get("early_stop"):
        out.update(feasible=False, state="pruned" if rec["state"] == "pruned" else "infeasible")
    elif rec["state"] != "failed":
        feasible = s.budget.holds(metrics)
        out.update(feasible=feasible, state="complete" if feasible else "infeasible")
    return out


def _finish_trial(
    s: SearchState, trial: optuna.trial.Trial, rec: TrialRecord, *, pruned: bool = False
) -> None:
    import optuna

    trial.set_user_attr("record", rec)
    if rec["state"] in ("failed", "pruned"):
        # an early-stopped trial is PRUNED (Optuna's word for it; samplers skip it, like an
        # incompatible combination); a failed one FAIL
        stopped = pruned or rec["state"] == "pruned"
        state = optuna.trial.TrialState.PRUNED if stopped else optuna.trial.TrialState.FAIL
        s.study.tell(trial, state=state)
        return
    for name, excess in s.budget.constraints(rec["metrics"]).items():
        trial.set_constraint(name, excess)
    s.study.tell(trial, values(rec))


def search_loop(s: SearchState) -> None:
    """Ask, evaluate (screen stage), tell, until the trial count or the time runs out."""
    study = s.study
    _enqueue_start(s)
    stale = st.fail_stale_trials(study, lambda trial, rec: _finish_trial(s, trial, rec))
    if stale:
        s.notes.append(
            f"resumed: {len(stale)} trial(s) interrupted by an earlier run: "
            "each told from its saved record, or asked again"
        )
    records = st.finished_records(study)
    s.stop_reason = None
    s.ui.update(done=configurations(records), best=best_line(s, records))
    executor = make_executor(s.cfg.ray, s.cfg.ray_workers, max(s.space.threads))
    inflight: dict[Any, tuple[Any, Candidate, Any, float]] = {}
    explorer = None if s.grid else Explorer(s.space, s.cfg.seed + len(records))
    try:
        while True:
            while len(inflight) < executor.capacity and _can_ask(
                s, configurations(records) + len(inflight), len(records) + len(inflight)
            ):
                trial = study.ask()
                cand = _suggest(s, trial)
                number = trial.number + 1
                trial.set_user_attr("number", number)
                reason = cand.incompatible()
                if reason is not None:
                    rec = s.make_record(number, cand, "screen", _skipped(reason), 0.0)
                    _finish_trial(s, trial, rec, pruned=True)
                    records[number] = rec
                    continue
                original = _duplicate(s, records, cand)
                if explorer is not None and original is None:
                    explorer.asked()
                if original is not None:
                    rec: TrialRecord = {
                        **_screen_view(s, original),
                        **_identity(number, cand),
                        "duplicate_of": original["number"],
                        "duration_s": 0.0,
                        "timings_s": breakdown({}, 0.0),  # nothing was measured
                        "pareto": False,
                    }
                    _finish_trial(s, trial, rec)
                    records[number] = rec
                    if explorer is not None:
                        seen = {st.candidate_of(r).key() for r in records.values()}
                        seen |= {c.key() for _, c, _, _ in inflight.values()}
                        explorer.answered(study, seen | {st.candidate_of(s.baseline).key()})
                    continue
                spec = s.spec(number, cand, "screen", best_screen=best_screen(s, records))
                if screen.outside_quality(spec, spec.quality):
                    # its weights were scored before and are clearly over the budget:
                    # nothing to build or measure (quality first, from the known figure)
                    rec = s.make_record(number, cand, "screen", _known_outside(spec, records), 0.0)
                    _note_drawn(trial, rec)
                    _finish_trial(s, trial, rec)
                    records[number] = rec
                    s.ui.log(describe(rec, s.unit))
                    continue
                inflight[executor.submit(s.evaluator, spec)] = (
                    trial, cand, spec, time.monotonic(),
                )  # fmt: skip
                s.ui.update(activity=f"#{number} {cand.label()} (screen)")
            if not inflight:
                break
            for handle, outcome in executor.wait(list(inflight)):
                trial, cand, spec, started = inflight.pop(handle)
                seconds = time.monotonic() - started
                rec = s.make_record(spec.number, cand, "screen", outcome, seconds)
                _note_drawn(trial, rec)
                s.remember_quality(spec, outcome)
                _finish_trial(s, trial, rec)
                records[rec["number"]] = rec
                s.durations.append(seconds)
                s.note_screened(rec)
                s.ui.log(describe(rec, s.unit))
                s.ui.update(done=configurations(records), best=best_line(s, records))
    finally:
        executor.close()
    if explorer is not None and explorer.note():
        s.notes.append(explorer.note())
    if s.stop_reason:
        s.notes.append(f"search stopped: {s.stop_reason}")


def _note_drawn(trial: Any, rec: TrialRecord) -> None:
    """Say in ``rec``'s notes when its configuration was drawn by the :class:`Explorer`."""
    if trial.user_attrs.get(EXPLORE_ATTR):
        rec["notes"].append(
            "drawn at random: the sampler had proposed only measured configurations "
            f"{EXPLORE_AFTER} times in a row"
        )


def _known_outside(spec: Any, records: dict[int, TrialRecord]) -> dict[str, Any]:
    """The quality-first outcome of a trial whose weights' perplexity is already known."""
    source = records.get(spec.quality_from) if spec.quality_from else None
    size = source["metrics"].get("weight_bytes") if source else None
    note = f"perplexity known from trial {spec.quality_from} (the same weights)"
    return {**screen.skipped_outcome(spec.quality, size, [note]), "timings_s": breakdown({}, 0.0)}


def _skipped(reason: str) -> dict[str, Any]:
    from wattlm.search.evaluate import failed_outcome

    return failed_outcome(f"incompatible: {reason}")


def _identity(number: int, cand: Candidate) -> dict[str, Any]:
    return {
        "number": number,
        "label": cand.label(),
        "params": cand.params(),
        "candidate": cand.to_dict(),
        "notes": [],
    }


def remeasure_order(pool: list[TrialRecord]) -> list[TrialRecord]:
    """The order in which screen-feasible candidates are re-measured: the best of each
    backend first (by screened objective), then the rest by objective.

    A short screen can rank one runtime too well against another (16 decoded tokens favour
    torch's eager decode over llama.cpp's); the full stage decides between runtimes only
    if each runtime's best is measured there.

    Example:
        >>> recs = [{"number": 1, "backend": "torch", "metrics": {"objective": {"median": 1.0}}},
        ...         {"number": 2, "backend": "torch", "metrics": {"objective": {"median": 2.0}}},
        ...         {"number": 3, "backend": "llamacpp", "metrics": {"objective": {"median": 3.0}}}]
        >>> [r["number"] for r in remeasure_order(recs)]
        [1, 3, 2]
    """
    ranked = sorted(pool, key=_objective)
    firsts: dict[str, TrialRecord] = {}
    for r in ranked:
        firsts.setdefault(r["backend"], r)
    best = list(firsts.values())
    return best + [r for r in ranked if r not in best]


def remeasure(s: SearchState) -> None:
    """Measure screen-feasible candidates again at the full stage, in
    :func:`remeasure_order` (each backend's best first).

    Goes down the list until ``remeasure`` of them are feasible at the full stage too
    (one may fail the budget on the longer perplexity text), or the time runs out; at
    least one is always re-measured.
    """
    k = s.cfg.remeasure
    if k == 0:
        return
    records = st.finished_records(s.study)
    full_ok = [r for r in records.values() if r["stage"] == "full" and r["feasible"]]
    pool = remeasure_order(
        [
            r
            for r in records.values()
            if r["stage"] == "screen" and r["feasible"] and r["duplicate_of"] is None
        ]
    )
    for measured, rec in enumerate(pool):
        if len(full_ok) >= k:
            break
        left = s.time_left()
        # what must still fit: this candidate's own full stage, the peer at the
        # recommendation's batch size, and saving the recommendation
        need = s.candidate_full_s(rec) + s.peer_same_batch_s() + s.recommend_s()
        if measured and left is not None and left < need:
            s.notes.append("time budget: fewer candidates were re-measured than asked")
            break
        cand = st.candidate_of(rec)
        s.ui.update(activity=f"#{rec['number']} {cand.label()} (full stage)")
        spec = s.spec(rec["number"], cand, "full")
        outcome, seconds = s.evaluate(spec)
        s.remember_quality(spec, outcome)
        s.full_durations.append(seconds)
        s.full_quality_s.append((outcome.get("timings_s") or {}).get("quality_s", 0.0))
        full = s.make_record(rec["number"], cand, "full", outcome, seconds)
        kept = {
            k2: full[k2]
            for k2 in ("metrics", "feasible", "state", "error", "result_path", "timings_s")
        }
        # the full stage measures every repeat: its only early stop is quality first
        kept["early_stop"] = (
            full["early_stop"] if full["early_stop"] == screen.QUALITY_SKIP else None
        )
        s.study.set_user_attr(f"full:{rec['number']}", {**kept, "duration_s": seconds})
        s.ui.log(describe(full, s.unit) + " [full]")
        if full["feasible"]:
            full_ok.append(full)
