"""``report.md`` of an optimize run: the HTML report's content for terminals and PRs.

Example:
    >>> from wattlm.testing.optimize_record import sample_optimize_record
    >>> print(render_optimize_markdown(sample_optimize_record()).splitlines()[0])
    # wattlm optimize: smollm2-135m
"""

from __future__ import annotations

from typing import Any

from wattlm.report._format import context_lines, format_bytes, format_count
from wattlm.report.optimize_view import FRONT_COLUMNS, TRIAL_COLUMNS, OptimizeView, column_headers
from wattlm.report.optimize_words import (
    describe_config,
    format_seconds,
    format_stat,
    metrics,
    source_words,
    trial_name,
)


def _escape(text: Any) -> str:
    """Text safe in a Markdown table cell or list item (no pipes, newlines or raw HTML)."""
    text = str(text).replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def _table(view: OptimizeView, trials: list[dict[str, Any]], keys: list[str]) -> list[str]:
    keys = view.shown(keys)
    lines = ["| " + " | ".join(column_headers(view, keys)) + " |"]
    lines.append("|" + "|".join("---" for _ in keys) + "|")
    for trial in trials:
        cells = view.trial_cells(trial)
        if trial is view.recommended:
            cells["number"] += " ★"
        lines.append("| " + " | ".join(_escape(cells[k]) for k in keys) + " |")
    return lines


def _headline(view: OptimizeView) -> list[str]:
    lines = ["## Recommendation", ""]
    if view.rejected_recommendation:
        lines += [f"> Note: {_escape(view.rejected_recommendation)}.", ""]
    trial = view.recommended
    if trial is None:
        return [*lines, f"**{_escape(view.no_recommendation())}**", ""]
    lines += [f"**{_escape(trial_name(trial))}**: {_escape(describe_config(trial))}.", ""]
    name = view.objective.get("name") or "energy"
    lines.append(
        f"- {_escape(name)}: **{view.energy_sentence(trial)}**, {source_words(view.source)}"
    )
    lines.append(f"- quality: {_escape(view.quality_sentence(trial))}")
    lines += [f"- {_escape(s)}" for s in view.ratio_sentences()]
    for other in view.tied_with(trial.get("number")):
        energy = format_stat(metrics(other).get("energy_j_per_token"))
        lines.append(
            f"- **tie** with {_escape(trial_name(other))} ({energy} {view.energy_unit()}): "
            "their 95% confidence intervals overlap, so the difference is not a win"
        )
    saved = view.record.get("recommended_model")
    if isinstance(saved, dict):
        m = metrics(saved)
        lines.append(
            f"- saved to `{_escape(saved.get('path'))}`, re-benchmarked: energy "
            f"{format_stat(m.get('energy_j_per_token'))} {view.energy_unit()} "
            f"(`{_escape(saved.get('result_path'))}`)"
        )
    return [*lines, ""]


def _method(view: OptimizeView) -> list[str]:
    obj = view.objective
    lines = ["## Method", ""]
    lines.append(
        f"- objective `{_escape(obj.get('name'))}`: minimise `{_escape(obj.get('metric'))}` "
        f"({_escape(view.energy_unit())})"
        + (f"; {_escape(obj['batch_note'])}" if obj.get("batch_note") else "")
    )
    lines.append(
        f"- budget: {_escape(view.budget_sentence())}; over-budget trials are never recommended"
    )
    lines.append(f"- energy: {source_words(view.source)}")
    ties = "; ".join(f"#{a} ~ #{b}" for a, b in view.ties) or "none"
    lines.append(f"- medians with 95% CIs; overlapping CIs are ties, not wins (ties: {ties})")
    lines.append("- state (measured): `screen` = cheap screening only, `full` = full protocol")
    return [*lines, *(f"- {_escape(n)}" for n in view.record.get("notes") or []), ""]


def _context(view: OptimizeView) -> list[str]:
    model = view.record.get("model") or {}
    facts = [("model", model.get("spec"))]
    if isinstance(model.get("parameters"), int):
        facts.append(("parameters", format_count(model["parameters"])))
    if isinstance(model.get("weight_bytes"), int):
        facts.append(("weights (baseline)", format_bytes(model["weight_bytes"])))
    context = view.record.get("context")
    facts += context_lines(context) if isinstance(context, dict) else []
    return ["## Context", "", *(f"- {k}: {_escape(v)}" for k, v in facts if v is not None), ""]


def render_optimize_markdown(record: dict[str, Any]) -> str:
    """The Markdown report of an optimize record."""
    view = OptimizeView(record)
    spec = (record.get("model") or {}).get("spec") or "model"
    when = str(record.get("created_utc") or "").replace("T", " ").removesuffix("Z")
    feasible = sum(view.usable(t) for t in view.trials)
    meta = f"{when} UTC · wattlm {record.get('wattlm_version', '?')} · {len(view.trials)} trials"
    meta += f" ({feasible} within budget) · search time {format_seconds(record.get('elapsed_s'))}"
    lines = [f"# wattlm optimize: {_escape(spec)}", "", _escape(meta), "", *_headline(view)]
    lines += ["## Pareto front", ""]
    lines += [*_table(view, view.front, FRONT_COLUMNS), ""] if view.front else ["None.", ""]
    keys = [k for k, _ in TRIAL_COLUMNS]
    keys += ["error"] if any(t.get("error") for t in view.trials) else []
    keys += ["stopped"] if any(t.get("early_stop") for t in view.trials) else []
    lines += ["## All trials", "", *_table(view, view.trials, keys), ""]
    if view.peer is not None:
        peers = [view.peer, *([view.peer_same_batch] if view.peer_same_batch else [])]
        lines += ["Peer (not a trial):", "", *_table(view, peers, FRONT_COLUMNS[1:]), ""]
    lines += _method(view) + _context(view)
    return "\n".join(lines).rstrip() + "\n"
