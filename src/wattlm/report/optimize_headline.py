"""The headline block of ``report.html``: the recommendation a reader came for.

Example:
    >>> from wattlm.report.optimize_view import OptimizeView
    >>> from wattlm.testing.optimize_record import sample_optimize_record
    >>> block = headline_html(OptimizeView(sample_optimize_record()))
    >>> "estimated, not measured" in block and "12.2×" in block
    True
"""

from __future__ import annotations

from html import escape
from typing import Any

from wattlm.report._format import format_number
from wattlm.report.optimize_view import OptimizeView
from wattlm.report.optimize_words import (
    DASH,
    ci95,
    describe_config,
    format_increase,
    format_perplexity,
    format_ratio,
    format_stat,
    median,
    metrics,
    trial_name,
)


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _card(label: str, big: str, small: str) -> str:
    return (
        f'<div class="card"><div class="label">{label}</div><div class="big">{big}</div>'
        f'<div class="small">{small}</div></div>'
    )


def _source_badge(source: str | None) -> str:
    if source and source.startswith("estimate:"):
        return f'<span class="estimate">estimated, not measured</span> <code>{_e(source)}</code>'
    return f"<code>{_e(source or 'not recorded')}</code>"


def _energy_card(view: OptimizeView, stat: Any) -> str:
    label = _e(view.objective.get("name") or "energy")
    value = median(stat)
    if value is None:
        return _card(label, DASH, f"no energy figure · {_source_badge(view.source)}")
    lo, hi = ci95(stat)
    interval = f"95% CI [{format_number(lo)}, {format_number(hi)}]" if lo is not None else ""
    big = f'{format_number(value)} <span class="unit">{_e(view.energy_unit())}</span>'
    return _card(label, big, f"{interval} · {_source_badge(view.source)}".lstrip(" ·"))


def _quality_card(view: OptimizeView, trial: dict[str, Any]) -> str:
    ppl, limit = metrics(trial).get("perplexity"), view.budget.get("limit")
    small = [
        f"{format_increase(view.increase(trial))} vs baseline "
        f"{format_perplexity(view.budget.get('baseline'))}"
    ]
    if isinstance(limit, (int, float)):
        small.append(f"limit {format_perplexity(limit)}")
        if isinstance(ppl, (int, float)):
            ok = ppl <= limit
            small.append(
                f'<span class="{"ok" if ok else "bad"}">{"within" if ok else "over"} budget</span>'
            )
    return _card(
        _e(view.budget.get("metric") or "quality"), format_perplexity(ppl), " · ".join(small)
    )


def headline_html(view: OptimizeView) -> str:
    """The recommendation block: the pick in words, its figures as cards, ties, the saved
    model; or why nothing is recommended."""
    trial = view.recommended
    parts = ['<section class="headline" id="headline"><h2>Recommendation</h2>']
    if view.rejected_recommendation:
        parts.append(f'<p class="warning">Note: {_e(view.rejected_recommendation)}.</p>')
    if trial is None:
        parts.append(f'<p class="warning"><strong>{_e(view.no_recommendation())}</strong></p>')
        return "".join([*parts, "</section>"])
    m = metrics(trial)
    parts.append(f'<p class="pick">{_e(trial_name(trial))}</p>')
    parts.append(f'<p class="words">{_e(describe_config(trial))}</p><div class="cards">')
    parts.append(_energy_card(view, m.get("energy_j_per_token")))
    parts.append(_quality_card(view, trial))
    ratios = view.record.get("ratios") or {}
    base = ratios.get("tokens_per_joule_vs_baseline")
    who = _e(trial_name(view.baseline)) if view.baseline else "the baseline"
    parts.append(_card("tokens per joule vs baseline", format_ratio(base), who))
    same = ratios.get("tokens_per_joule_vs_peer_same_batch")
    if same is not None:
        who = view.peer_same_batch or view.peer
        parts.append(
            _card(
                "tokens per joule vs llama.cpp, same batch size",
                format_ratio(same),
                _e(trial_name(who)) if who else "llama.cpp default",
            )
        )
    if view.peer is not None or ratios.get("tokens_per_joule_vs_peer") is not None:
        peer = _e(trial_name(view.peer)) if view.peer else "llama.cpp default"
        title = "tokens per joule vs llama.cpp"
        if view.peer_same_batch is not None:
            title += " at batch 1 (batching + configuration)"
        parts.append(_card(title, format_ratio(ratios.get("tokens_per_joule_vs_peer")), peer))
    parts.append("</div>")
    for other in view.tied_with(trial.get("number")):
        parts.append(
            f'<p class="tie"><strong>Tie:</strong> {_e(trial_name(trial))} and '
            f"{_e(trial_name(other))} ({_e(format_stat(metrics(other).get('energy_j_per_token')))} "
            f"{_e(view.energy_unit())}) have overlapping 95% confidence intervals: the difference "
            "between them is not a win.</p>"
        )
    parts.append(_saved_model(view))
    return "".join([*parts, "</section>"])


def _saved_model(view: OptimizeView) -> str:
    saved = view.record.get("recommended_model")
    if not isinstance(saved, dict):
        return ""
    m = metrics(saved)
    figures = (
        f"energy {format_stat(m.get('energy_j_per_token'))} {view.energy_unit()}, "
        f"perplexity {format_perplexity(m.get('perplexity'))}"
    )
    return (
        f'<p class="small">Saved to <code>{_e(saved.get("path") or DASH)}</code> and '
        f"re-benchmarked: {_e(figures)} (<code>{_e(saved.get('result_path') or DASH)}</code>).</p>"
    )
