"""The end of a search: decide (front, ties, recommendation), deliver, write ``optimize.json``.

Only figures measured at the same stage are compared: the *decision stage* is the full
stage when candidates were re-measured (``remeasure > 0``), else the screen stage. The
front and the recommendation consider feasible trials measured at that stage, never a
duplicate of another trial, and never an infeasible one however low its energy.

A trial whose stages include ``heal`` is compared on its *amortised* objective: its
objective plus its healing energy spread over ``serving_tokens`` served tokens
(:func:`wattlm.report.heal_payback.amortised`); its ``heal`` entry gets the served tokens
after which the saving pays the healing back (``payback_tokens``).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattlm.errors import WattlmError
from wattlm.report.heal_payback import NO_SAVING_NOTE, amortised, payback_tokens
from wattlm.report.records import OptimizeMetrics, OptimizeRecord, TrialRecord
from wattlm.search import study as st
from wattlm.search.metrics import OBJECTIVES
from wattlm.search.pareto import Choice, pareto_front, recommend, ties
from wattlm.search.quality_budget import QualityBudget

if TYPE_CHECKING:
    from wattlm.search.state import SearchState

BATCH_NOTE = (
    "energy per token at each configuration's own batch size: a batch of 8 serves 8 requests "
    "at once, so its energy per token is lower while each request waits longer (see latency "
    "per token); the baseline runs at batch 1, the peer at batch 1 and again at the "
    "recommendation's batch size (ratios.tokens_per_joule_vs_peer_same_batch compares equal "
    "batch sizes; ratios.tokens_per_joule_vs_peer, against batch 1, is batching plus "
    "configuration)"
)


def _relative(path: str | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def stage_view(rec: TrialRecord, stage: str, budget: QualityBudget) -> TrialRecord | None:
    """``rec`` with the metrics and feasibility of ``stage``; ``None`` if not measured there."""
    if stage == "full":
        return rec if rec["stage"] == "full" else None
    metrics = rec.get("screen_metrics")
    if metrics is None:
        return None
    stopped = rec["state"] in ("failed", "pruned") or bool(rec.get("early_stop"))
    feasible = not stopped and budget.holds(metrics)
    return {**rec, "metrics": metrics, "feasible": feasible}


def _choices(
    trials: list[TrialRecord],
    stage: str,
    budget: QualityBudget,
    serving_tokens: int | None = None,
) -> list[Choice]:
    """The feasible trials measured at ``stage``, each at its amortised objective (healing
    energy over ``serving_tokens``; a trial without ``heal`` keeps its objective)."""
    out = []
    for rec in trials:
        view = stage_view(rec, stage, budget)
        if view is None or not view["feasible"] or rec["duplicate_of"] is not None:
            continue
        m = view["metrics"]
        median, ci = amortised(m["objective"], rec.get("heal"), serving_tokens)
        out.append(
            Choice(
                rec["number"],
                median,
                ci,
                m["perplexity"],
                float(m.get("weight_bytes") or 0),
            )
        )
    return out


def _front(choices: list[Choice]) -> list[int]:
    idx = pareto_front([(c.objective, c.quality) for c in choices])
    return sorted(choices[i].number for i in idx)


def finish(s: SearchState) -> OptimizeRecord:
    """Decide, save the recommended model, write ``optimize.json`` and the reports."""
    cfg = s.cfg
    records = st.finished_records(s.study)
    trials = [s.baseline, *(records[n] for n in sorted(records))]
    decision = "full" if cfg.remeasure > 0 else "screen"
    choices = _choices(trials, decision, s.budget, cfg.serving_tokens)
    front = _front(choices)
    screen_front = _front(_choices(trials, "screen", s.budget, cfg.serving_tokens))
    chosen, tied, why = recommend(choices)
    among = {*front, *tied} | ({chosen} if chosen is not None else set())
    tie_pairs = ties(choices, among=among)
    notes = list(s.notes)
    notes.extend(add_paybacks(trials, cfg.serving_tokens))
    if chosen is not None:
        label = next(r["label"] for r in trials if r["number"] == chosen)
        notes.append(f"recommended: trial {chosen} ({label}): {why}")
    if chosen == 0:
        notes.append("no configuration beat the baseline within the quality budget")
    for rec in trials:
        rec["pareto"] = rec["number"] in front
    if chosen is not None and s.peer is not None and decision == "full":
        batch = next(r["batch_size"] for r in trials if r["number"] == chosen)
        s.peer_same_batch = s.peer if batch == 1 else _peer_at(s, batch)
    recommended_model = None
    if chosen is not None and s.real:
        from wattlm.search.recommend import save_recommended

        s.ui.update(activity=f"saving and re-benching trial {chosen}")
        rec = next(r for r in trials if r["number"] == chosen)
        recommended_model = save_recommended(s, rec)
    elif chosen is not None:
        notes.append("no model saved: trials were evaluated by a synthetic evaluator")
    record = _record(s, trials, decision, front, screen_front, tie_pairs, chosen, notes)
    record["recommended_model"] = recommended_model
    return _write(s, record)


def add_paybacks(trials: list[TrialRecord], serving_tokens: int) -> list[str]:
    """Give each ``heal`` entry its payback and amortised objective; the notes to add.

    ``payback_tokens`` compares the record's own stage with the baseline's figure at that
    stage (``screen_payback_tokens``: the screen's figures); ``trials[0]`` is the baseline.

    Example:
        >>> base = {"stage": "full", "metrics": {"objective": {"median": 0.75}},
        ...         "screen_metrics": {"objective": {"median": 1.0}}}
        >>> rec = {"stage": "full", "metrics": {"objective": {"median": 0.5, "ci95": None}},
        ...        "screen_metrics": {"objective": {"median": 0.5}}, "heal": {"energy_j": 100.0}}
        >>> _ = add_paybacks([base, rec], 1000)
        >>> rec["heal"]["payback_tokens"], rec["heal"]["screen_payback_tokens"]
        (400.0, 200.0)
        >>> rec["heal"]["amortised_objective"]  # 0.5 + 100 J / 1000 tokens
        0.6
    """
    baseline, healed = trials[0], [r for r in trials[1:] if r.get("heal")]
    for rec in healed:
        heal = dict(rec["heal"])  # type: ignore[typeddict-item]
        heal.pop("note", None)
        figures = {}
        for key, stage in (("payback_tokens", rec["stage"]), ("screen_payback_tokens", "screen")):
            own = _median(rec["metrics"] if stage == rec["stage"] else rec.get("screen_metrics"))
            base = _median(baseline["metrics"] if stage == "full" else baseline["screen_metrics"])
            figures[key] = None
            if own is not None and base is not None:
                figures[key] = payback_tokens(heal.get("energy_j"), base, own)
                if figures[key] is None and key == "payback_tokens":
                    heal["note"] = NO_SAVING_NOTE
        objective = rec["metrics"].get("objective")
        heal.update(figures)
        heal["amortised_objective"] = (
            amortised(objective, heal, serving_tokens)[0] if objective else None
        )
        rec["heal"] = heal  # type: ignore[typeddict-unknown-key]
    if not healed:
        return []
    return [
        f"{len(healed)} trial(s) include a heal stage: they are compared on amortised energy "
        f"per token, the objective plus their healing energy over {serving_tokens:,} served "
        "tokens (--serving-tokens); the healing energy is charged to every trial that uses "
        "the same healed weights (a user pays it once to get that model); payback_tokens: "
        "served tokens after which the saving per token against the baseline repays it"
    ]


def _median(metrics: OptimizeMetrics | None) -> float | None:
    entry = (metrics or {}).get("objective")
    return None if not entry else entry["median"]


def _peer_at(s: SearchState, batch: int) -> TrialRecord | None:
    from wattlm.search.peer import measure_peer

    rec = measure_peer(s, batch)
    if rec is not None:
        s.ui.log(f"{rec['label']}: " + _describe_energy(rec, s.unit) + " [peer, same batch]")
    return rec


def _describe_energy(rec: TrialRecord, unit: str) -> str:
    """``0.0123 J/token`` (or why there is no figure)."""
    if rec["state"] == "failed":
        return f"failed ({rec['error']})"
    m = rec["metrics"].get("objective")
    return f"{m['median']:.4g} {unit}" if m else "no energy"


def _ratio(numerator: OptimizeMetrics | None, rec: OptimizeMetrics | None) -> float | None:
    """How many times more work per joule ``rec`` does than ``numerator``'s figure."""
    if numerator is None or rec is None:
        return None
    a, b = numerator.get("objective"), rec.get("objective")
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def _record(
    s: SearchState,
    trials: list[TrialRecord],
    decision: str,
    front: list[int],
    screen_front: list[int],
    tie_pairs: list[list[int]],
    chosen: int | None,
    notes: list[str],
) -> OptimizeRecord:
    from wattlm._version import __version__
    from wattlm.measure.context import collect_context

    cfg = s.cfg
    metric, unit = OBJECTIVES[cfg.objective]
    base_full = s.baseline["metrics"]
    base_screen = s.baseline["screen_metrics"]
    quality = s.study.user_attrs.get(st.quality_key("full", st.candidate_of(s.baseline)))
    tokens = (quality or {}).get("quality", {}).get("tokens", cfg.full.ppl_max_tokens)
    screen_q = s.study.user_attrs.get(st.quality_key("screen", st.candidate_of(s.baseline)))
    screen_tokens = (screen_q or {}).get("quality", {}).get("tokens", cfg.screen.ppl_max_tokens)
    chosen_view = None
    if chosen is not None:
        rec = next(r for r in trials if r["number"] == chosen)
        chosen_view = stage_view(rec, decision, s.budget)["metrics"]
    base_view = stage_view(s.baseline, decision, s.budget)["metrics"]
    peer, same = s.peer, s.peer_same_batch
    for p in (peer, same):
        if p is not None and p["state"] != "failed":
            p["metrics"]["perplexity_increase"] = 0.0
    model_info = _model_info(s)
    energy_source = s.baseline.get("energy_source") or "unavailable"
    if energy_source.startswith("estimate:"):
        notes.append(
            "energy is an estimate (no sensor on this machine): process CPU time × a per-core "
            "power model + DRAM; see docs/energy.md"
        )
    notes.append(
        f"every trial was screened ({cfg.screen.ppl_max_tokens} perplexity tokens, "
        f"{cfg.screen.prompt_tokens}-token prompts, {cfg.screen.new_tokens} new tokens, "
        f"{_repeats(cfg.screen)}); the {cfg.remeasure} lowest-energy feasible ones were "
        f"measured again at the full stage ({cfg.full.ppl_max_tokens} perplexity tokens, "
        f"{cfg.full.prompt_tokens}-token prompts, {cfg.full.new_tokens} new tokens, "
        f"{_repeats(cfg.full)}); only {decision}-stage figures are compared"
    )
    notes.extend(_screen_rungs(s, trials))
    notes.append(
        "quality is measured on the runtime that serves each configuration: llama.cpp's and "
        "ONNX Runtime's own log-probabilities (each trial's result keeps torch's figure on the "
        "same weights as a cross-check); KL and top-1 agreement are against the baseline's "
        "next-token distribution, on its windows inside each stage's perplexity text "
        f"({_kl_positions(cfg.screen)} scored positions at the screen, "
        f"{_kl_positions(cfg.full)} at the full stage)"
    )
    if s.base is not None:
        notes.extend(n for n in s.base.notes if n not in notes)
    return {
        "schema_version": 1,
        "kind": "optimize",
        "wattlm_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": cfg.to_dict(),
        "model": model_info,
        "objective": {
            "name": cfg.objective,
            "metric": metric,
            "unit": unit,
            "batch_note": BATCH_NOTE,
        },
        "budget": {
            "metric": "perplexity",
            "baseline": base_full["perplexity"],
            "max_increase": cfg.budget,
            "limit": base_full["perplexity"] * (1.0 + cfg.budget),
            "tokens": tokens,
            "screen_baseline": base_screen["perplexity"],
            "screen_limit": base_screen["perplexity"] * (1.0 + cfg.budget),
            "screen_tokens": screen_tokens,
            **({"max_kl_nats": cfg.kl_budget} if cfg.kl_budget is not None else {}),
        },
        "energy_source": energy_source,
        "serving_tokens": cfg.serving_tokens,
        "trials": [_public(r, s.out) for r in trials],
        "baseline": 0,
        "peer": _public(peer, s.out) if peer is not None else None,
        "peer_same_batch": _public(same, s.out) if same is not None else None,
        "pareto": front,
        "screen_pareto": screen_front,
        "ties": tie_pairs,
        "recommended": chosen,
        "recommended_model": None,
        "ratios": {
            "tokens_per_joule_vs_baseline": _ratio(base_view, chosen_view),
            "tokens_per_joule_vs_peer": _ratio(peer["metrics"] if peer else None, chosen_view)
            if decision == "full"
            else None,
            "tokens_per_joule_vs_peer_same_batch": _ratio(
                same["metrics"] if same else None, chosen_view
            )
            if decision == "full"
            else None,
        },
        "search": {
            "study_name": s.study_name,
            "storage": s.storage,
            "sampler": cfg.sampler,
            "space": s.space.to_dict(),
            "decision_stage": decision,
            "stop_reason": s.stop_reason,
            "trials_asked": len(trials) - 1,
            "dropped_choices": s.dropped_choices,
        },
        "context": collect_context(s.threads),
        "notes": notes,
        "elapsed_s": round(time.monotonic() - s.started, 3),
    }


def _kl_positions(settings: Any) -> int:
    """Scored positions of the KL reference inside a stage's perplexity text.

    Example:
        >>> from wattlm.search.config import FULL, SCREEN
        >>> _kl_positions(SCREEN), _kl_positions(FULL)
        (512, 1024)
    """
    from wattlm.search.reference import CONTEXT, SCORED_TOKENS, WINDOW

    windows = max(1, min(settings.ppl_max_tokens // WINDOW, SCORED_TOKENS // (WINDOW - CONTEXT)))
    return windows * (WINDOW - CONTEXT)


def _repeats(settings: Any) -> str:
    """``5 repeats`` or ``2 to 4 repeats (until the 95% interval is within 10%)``."""
    if settings.rel_width is None:
        return f"{settings.repeats} repeats"
    return (
        f"{settings.min_repeats} to {settings.repeats} repeats (until the 95% interval of "
        f"decode energy per token is within {settings.rel_width:.0%} of its median)"
    )


def _screen_rungs(s: SearchState, trials: list[TrialRecord]) -> list[str]:
    """Notes on the screen's early stops (quality first, clear losers), when any ran."""
    from wattlm.search.screen import QUALITY_SKIP

    cfg = s.cfg
    skipped = [r["number"] for r in trials if r.get("early_stop") == QUALITY_SKIP]
    pruned = [r["number"] for r in trials if r["state"] == "pruned"]
    out = []
    if skipped and cfg.quality_margin is not None:
        out.append(
            f"{len(skipped)} trial(s) ended before their energy bench: screen perplexity more "
            f"than {cfg.budget + cfg.quality_margin:.1%} above the baseline's (the budget plus "
            f"a {cfg.quality_margin:.1%} margin for the screen slice): {_numbers(skipped)}"
        )
    if pruned and cfg.prune_factor is not None:
        out.append(
            f"{len(pruned)} trial(s) stopped early as clear losers: screen decode energy per "
            f"token above {cfg.prune_factor:g}x the best feasible screened figure at the time; "
            f"kept with the figures they had, out of the front and the recommendation: "
            f"{_numbers(pruned)}"
        )
    return out


def _numbers(numbers: list[int]) -> str:
    """``#3, #7, #9`` (at most 12, then a count)."""
    shown = ", ".join(f"#{n}" for n in numbers[:12])
    return shown + (f" and {len(numbers) - 12} more" if len(numbers) > 12 else "")


def _model_info(s: SearchState) -> dict[str, Any]:
    if s.base is not None:
        from wattlm.models.fingerprint import parameter_count, weight_bytes

        return {
            "spec": s.cfg.model,
            "parameters": parameter_count(s.base.model),
            "weight_bytes": weight_bytes(s.base.model),
        }
    return {
        "spec": s.cfg.model,
        "parameters": None,
        "weight_bytes": s.baseline["metrics"].get("weight_bytes"),
    }


def _public(rec: TrialRecord, out: Path) -> TrialRecord:
    """A trial record as written: paths relative to the run folder."""
    return {**rec, "result_path": _relative(rec.get("result_path"), out)}


def _write(s: SearchState, record: OptimizeRecord) -> OptimizeRecord:
    from wattlm._files import write_json
    from wattlm.report.result import validate_result

    try:
        from wattlm.report.optimize_report import write_reports
    except ImportError:
        write_reports = None
        record["notes"].append("no HTML/Markdown report: wattlm.report.optimize_report is missing")
    validate_result(record, source="optimize record")
    write_json(s.out / "config.json", s.cfg.to_dict())
    write_json(s.out / "optimize.json", record)
    if write_reports is not None:
        try:
            write_reports(record, s.out)
        except Exception as err:
            raise WattlmError(
                f"wrote {s.out / 'optimize.json'}, but the report failed: {err}".splitlines()[0],
                hint=f"render it again later with `wattlm report {s.out}`",
            ) from err
    return record
