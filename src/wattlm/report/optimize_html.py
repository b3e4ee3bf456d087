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
import math
from html import escape
from importlib import resources
from typing import Any

from wattlm.report._format import context_lines, format_bytes, format_count
from wattlm.report.optimize_headline import headline_html
from wattlm.report.optimize_plot import pareto_figure
from wattlm.report.optimize_view import FRONT_COLUMNS, TRIAL_COLUMNS, OptimizeView, column_headers
from wattlm.report.optimize_words import (
    DASH,
    format_seconds,
    source_words,
)

_NOTHING_TO_PLOT = (
    '<p class="warning">Nothing to plot: no trial has both a perplexity and an energy figure.</p>'
)
_TEXT_COLUMNS = {"label", "config", "state", "flags", "heal", "error", "stopped"}


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


def _sort_key(value: Any) -> str:
    """A number as JavaScript's ``parseFloat`` reads it; empty (sorted last) for none/NaN."""
    if not isinstance(value, (int, float)) or math.isnan(value):
        return ""
    return (
        repr(float(value)) if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    )


def _cell(key: str, text: str, below: tuple[str, str, str] | None) -> str:
    """A cell's HTML: a figure's interval on its own dimmed line; the label over its config
    (and its error, for a failed trial; why the screen stopped early, for a stopped one)."""
    if below is not None:
        config, error, stopped = below
        error = f'<div class="error">error: {_e(error)}</div>' if error else ""
        stopped = f'<div class="config">{_e(stopped)}</div>' if stopped else ""
        return f'{_e(text)}<div class="config">{_e(config)}</div>{error}{stopped}'
    head, sep, tail = text.partition(" [")
    if sep and key not in _TEXT_COLUMNS:
        return f'{_e(head)}<span class="ci">[{_e(tail)}</span>'
    return _e(text)


def _table(view: OptimizeView, trials: list[dict[str, Any]], keys: list[str], table_id: str) -> str:
    """A sortable table; the ``config`` column (and a failed trial's error) is folded under
    the ``label`` column."""
    numeric = set(view.sort_values({}))
    keys = view.shown(keys)
    merged = "label" in keys and "config" in keys
    keys = [k for k in keys if not (merged and k in ("config", "error", "stopped"))]
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
                attrs = f' data-sort="{_sort_key(raw)}"'
            elif merged and key == "label":
                attrs += f' data-sort="{_e(cells["label"])}"'
            below = (
                (cells["config"], cells["error"], cells["stopped"])
                if merged and key == "label"
                else None
            )
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
    figure = pareto_figure(view)
    plotted = any(trace["mode"] == "markers" for trace in figure["data"])
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
        headline_html(view),
        '<section id="plot"><h2>Energy vs quality</h2>',
        '<div id="pareto-plot" class="plot"></div>' if plotted else _NOTHING_TO_PLOT,
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
        f'<script type="application/json" id="pareto-data">{_script_json(figure)}</script>\n'
        f"<script>{_static('optimize.js')}</script>\n</body></html>\n"
    )
