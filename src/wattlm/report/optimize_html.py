"""``report.html`` of an optimize run: one self-contained page, readable offline.

The page carries its CSS, its small script (sortable tables, plot start-up) and the
plotly.js bundle inline, so it opens from a file with no network. Every text from the record
is HTML-escaped; the plot's data travels as JSON in a ``<script type="application/json">``
block with ``<``, ``>`` and ``&`` written as ``\\u003c``-style escapes, so no label can close
the block.

Example:
    >>> from wattlm.testing.optimize_record import sample_optimize_record
    >>> page = render_html(sample_optimize_record())
    >>> page.startswith("<!doctype html>"), 'id="pareto-plot"' in page
    (True, True)
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

from wattlm.report._format import context_lines, format_bytes, format_count, format_number
from wattlm.report.optimize_plot import pareto_figure
from wattlm.report.optimize_view import (
    DASH,
    FRONT_COLUMNS,
    TRIAL_COLUMNS,
    OptimizeView,
    ci95,
    column_headers,
    describe_config,
    format_increase,
    format_perplexity,
    format_ratio,
    format_seconds,
    format_stat,
    median,
    metrics,
    source_words,
    trial_name,
)

_TEXT_COLUMNS = {"label", "config", "state", "flags", "error"}


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _static(name: str) -> str:
    return resources.files("wattlm.report").joinpath("static", name).read_text(encoding="utf-8")


def _script_json(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element (cannot close it or open a comment)."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _plotly() -> tuple[str, str]:
    """The plotly.js bundle and its version (from the ``plotly`` package, no network)."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    return get_plotlyjs(), get_plotlyjs_version()


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


def _headline(view: OptimizeView) -> str:
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
    if view.peer is not None or ratios.get("tokens_per_joule_vs_peer") is not None:
        peer = _e(trial_name(view.peer)) if view.peer else "llama.cpp default"
        parts.append(
            _card(
                "tokens per joule vs llama.cpp",
                format_ratio(ratios.get("tokens_per_joule_vs_peer")),
                peer,
            )
        )
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


def _row_class(view: OptimizeView, trial: dict[str, Any]) -> str:
    classes = []
    if trial is view.recommended:
        classes.append("recommended")
    if trial is view.baseline:
        classes.append("baseline")
    state = trial.get("state")
    if state == "failed":
        classes.append("failed")
    elif not view.usable(trial):
        classes.append("infeasible")
    return " ".join(classes)


def _cell(key: str, text: str, below: tuple[str, str] | None) -> str:
    """A cell's HTML: a figure's interval on its own dimmed line; the label over its config
    (and its error, for a failed trial)."""
    if below is not None:
        config, error = below
        error = f'<div class="error">error: {_e(error)}</div>' if error else ""
        return f'{_e(text)}<div class="config">{_e(config)}</div>{error}'
    head, sep, tail = text.partition(" [")
    if sep and key not in _TEXT_COLUMNS:
        return f'{_e(head)}<span class="ci">[{_e(tail)}</span>'
    return _e(text)


def _table(view: OptimizeView, trials: list[dict[str, Any]], keys: list[str], table_id: str) -> str:
    """A sortable table; the ``config`` column (and a failed trial's error) is folded under
    the ``label`` column."""
    numeric = set(view.sort_values({}))
    merged = "label" in keys and "config" in keys
    keys = [k for k in keys if not (merged and k in ("config", "error"))]
    heads = []
    for key, header in zip(keys, column_headers(view, keys), strict=True):
        kind = "num" if key in numeric else "text"
        align = ' class="text"' if key in _TEXT_COLUMNS else ""
        header = "trial and configuration" if merged and key == "label" else header
        heads.append(
            f'<th data-type="{kind}"{align}><button type="button">{_e(header)}</button></th>'
        )
    rows = []
    for trial in trials:
        cells, values = view.trial_cells(trial), view.sort_values(trial)
        tds = []
        for key in keys:
            attrs = f' class="{key} text"' if key in _TEXT_COLUMNS else ""
            if key in numeric:
                raw = values.get(key)
                attrs = f' data-sort="{"" if raw is None else _e(repr(float(raw)))}"'
            elif merged and key == "label":
                attrs += f' data-sort="{_e(cells["label"])}"'
            below = (cells["config"], cells["error"]) if merged and key == "label" else None
            tds.append(f"<td{attrs}>{_cell(key, cells[key], below)}</td>")
        rows.append(f'<tr class="{_row_class(view, trial)}">{"".join(tds)}</tr>')
    return (
        f'<div class="table-wrap"><table class="sortable" id="{table_id}"><thead><tr>'
        f"{''.join(heads)}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _counts(view: OptimizeView) -> str:
    feasible = sum(view.usable(t) for t in view.trials)
    failed = sum(t.get("state") == "failed" for t in view.trials)
    return f"{len(view.trials)} trials: {feasible} within budget, {failed} failed"


def _energy_section(view: OptimizeView) -> str:
    source = view.source
    text = f"<p>Every energy figure in this report is {_e(source_words(source))}.</p>"
    if source and source.startswith("estimate:"):
        text += (
            "<p><strong>An estimate is an estimate.</strong> No energy sensor was read: the "
            "figures are CPU seconds of the work times a per-core power model of this CPU. "
            "They rank configurations on the same machine fairly (same model, same clock), "
            "but their absolute joules are not measurements. See <code>docs/energy.md</code>.</p>"
        )
    note = str(view.objective.get("batch_note") or "").rstrip(". ")
    if note:
        text += f"<p>Per token: {_e(note)}.</p>"
    return f'<section id="energy"><h2>Energy figures</h2>{text}</section>'


def _method(view: OptimizeView) -> str:
    obj = view.objective
    items = [
        f"<li>Objective: <code>{_e(obj.get('name') or DASH)}</code> — minimise "
        f"<code>{_e(obj.get('metric') or DASH)}</code> ({_e(view.energy_unit())}).</li>",
        f"<li>Quality budget: {_e(view.budget_sentence())}; trials above it stay in the record, "
        "marked infeasible, and are never recommended.</li>",
        "<li>Figures are medians with 95% confidence intervals. Two configurations whose "
        "intervals overlap are reported as a tie, not a win"
        + (
            ": " + "; ".join(f"#{a} ~ #{b}" for a, b in view.ties) + ".</li>"
            if view.ties
            else " (no ties in this run).</li>"
        ),
        "<li>State (measured): <code>screen</code> = cheap screening only (short text, few "
        "repeats); <code>full</code> = re-measured with the full protocol.</li>",
    ]
    items += [f"<li>{_e(n)}</li>" for n in view.record.get("notes") or []]
    return f'<section id="method"><h2>Method notes</h2><ul class="notes">{"".join(items)}</ul></section>'


def _context(view: OptimizeView) -> str:
    record = view.record
    model = record.get("model") or {}
    facts = [("model", model.get("spec") or DASH)]
    if isinstance(model.get("parameters"), int):
        facts.append(("parameters", format_count(model["parameters"])))
    if isinstance(model.get("weight_bytes"), int):
        facts.append(("weights (baseline)", format_bytes(model["weight_bytes"])))
    context = record.get("context")
    facts += context_lines(context) if isinstance(context, dict) else []
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    config = json.dumps(record.get("config"), indent=2, ensure_ascii=False, default=str)
    return (
        f'<section id="context"><h2>Hardware and software</h2><dl class="facts">{rows}</dl>'
        f"<details><summary>optimize configuration</summary><pre>{_e(config)}</pre></details>"
        "</section>"
    )


def render_html(record: dict[str, Any]) -> str:
    """The whole ``report.html`` of an optimize record (see :mod:`wattlm.report.optimize_view`)."""
    view = OptimizeView(record)
    plotly_js, plotly_version = _plotly()
    spec = (record.get("model") or {}).get("spec") or "model"
    when = str(record.get("created_utc") or "").replace("T", " ").removesuffix("Z")
    meta = [f"{when} UTC" if when else "", f"wattlm {record.get('wattlm_version', '?')}"]
    meta += [_counts(view), f"search time {format_seconds(record.get('elapsed_s'))}"]
    keys = [k for k, _ in TRIAL_COLUMNS]
    front = (
        _table(view, view.front, FRONT_COLUMNS, "front-table")
        if view.front
        else "<p>No trial is on the Pareto front.</p>"
    )
    body = [
        f"<header><h1>wattlm optimize: <code>{_e(spec)}</code></h1>",
        f'<p class="meta">{_e(" · ".join(m for m in meta if m))}</p></header>',
        _headline(view),
        '<section id="plot"><h2>Energy vs quality</h2><div id="pareto-plot" class="plot"></div>',
        '<noscript><p class="warning">The plot needs JavaScript; the tables below hold '
        "every figure.</p></noscript>",
        '<p class="caption">Each point is a trial (hover for its configuration). ★ recommended '
        "(lowest energy within budget); ◆ fp32 baseline; ■ llama.cpp default; × over budget; "
        "▶ far over budget, pinned to the edge; the dashed line is the quality budget; the "
        "blue line joins the Pareto front. Error bars are 95% confidence intervals.</p></section>",
        f'<section id="front"><h2>Pareto front</h2>{front}</section>',
        '<section id="trials"><h2>All trials</h2><p class="small">Click a column header to '
        f"sort. Greyed rows are over budget; failed trials show their error.</p>"
        f"{_table(view, view.trials, keys, 'trials-table')}</section>",
        _energy_section(view),
        _method(view),
        _context(view),
        f"<footer>Written by wattlm {_e(record.get('wattlm_version', '?'))} from "
        f"<code>optimize.json</code>. Plot drawn with plotly.js {_e(plotly_version)}, embedded: "
        "this file needs no network.</footer>",
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>wattlm optimize: {_e(spec)}</title><style>{_static('optimize.css')}</style>"
        f"</head><body><main>{''.join(body)}</main>\n"
        f"<script>{plotly_js}</script>\n"
        f'<script type="application/json" id="pareto-data">{_script_json(pareto_figure(view))}</script>\n'
        f"<script>{_static('optimize.js')}</script>\n</body></html>\n"
    )
