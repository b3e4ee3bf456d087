"""The Pareto plot of an optimize record as a plotly figure (plain dicts, JSON-ready).

x is the perplexity increase over the baseline in percent (the budget is a vertical line at
its limit), y the objective's energy per token with 95% CI error bars, on a log scale when
the figures span more than a factor of 10. Feasible and over-budget trials have different
colours and symbols, the Pareto front is joined by a line, the recommendation is a star with
an arrow, and the baseline and the llama.cpp peer have their own markers. Trials far beyond
the budget are pinned to the right edge (``▶``) so that they do not squash the interesting
region; their hover text gives the true value.

Hover text is HTML-escaped: plotly turns entities back into characters and inserts them as
text, so a label can never become markup.

Example:
    >>> from wattlm.report.optimize_view import OptimizeView
    >>> from wattlm.testing.optimize_record import sample_optimize_record
    >>> fig = pareto_figure(OptimizeView(sample_optimize_record()))
    >>> [t["name"] for t in fig["data"]][:3]
    ['Pareto front', 'within budget', 'over budget']
    >>> fig["layout"]["shapes"][0]["x0"], fig["layout"]["yaxis"]["type"]
    (2.0, 'log')
"""

from __future__ import annotations

import html
import math
from typing import Any

from wattlm.report.optimize_view import OptimizeView
from wattlm.report.optimize_words import (
    ci95,
    describe_config,
    describe_params,
    format_increase,
    format_perplexity,
    format_stat,
    median,
    metrics,
    trial_name,
)

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies
BLUE, ORANGE, VERMILION, GREY, BLACK, YELLOW = (
    "#0072B2",
    "#E69F00",
    "#D55E00",
    "#999999",
    "#000000",
    "#F0E442",
)
LOG_SPAN = 10.0  # y goes log when max/min of the plotted energies exceeds this


def _hover(view: OptimizeView, trial: dict[str, Any], role: str = "") -> str:
    m = metrics(trial)
    lines = [f"<b>{html.escape(trial_name(trial))}</b>" + (f" ({role})" if role else "")]
    lines.append(html.escape(describe_config(trial)))
    params = describe_params(trial.get("params"))
    if params:
        lines.append("params: " + html.escape(params))
    lines.append(
        f"perplexity {format_perplexity(m.get('perplexity'))} "
        f"({format_increase(view.increase(trial))})"
    )
    lines.append(f"energy {format_stat(m.get('energy_j_per_token'))} {view.energy_unit()}")
    lines.append(f"decode {format_stat(m.get('decode_tokens_per_s'))} tokens/s")
    state = html.escape(str(trial.get("state")))
    lines.append(f"{state}, {html.escape(str(trial.get('stage') or '?'))} measurement")
    return "<br>".join(lines)


def _point(view: OptimizeView, trial: dict[str, Any]) -> tuple[float, float] | None:
    """(increase %, energy) of a trial; ``None`` when either is missing or not a number. An
    infinite increase (a broken model) is kept: it is pinned to the right edge."""
    x, y = view.increase(trial), median(metrics(trial).get("energy_j_per_token"))
    if x is None or y is None or math.isnan(x) or x == -math.inf:
        return None
    return (x * 100, y) if math.isfinite(y) and y > 0 else None


def _spread(y: float, bound: float | None, sign: int) -> float:
    """Length of one error-bar arm (0 when the bound is missing or not finite)."""
    if bound is None or not math.isfinite(bound):
        return 0.0
    return max(0.0, sign * (bound - y))


def _x_edge(view: OptimizeView, xs: list[float]) -> float:
    """The right edge of the x axis: the budget's neighbourhood, plus the nearby trials."""
    rise = view.budget.get("max_increase")
    budget = rise * 100 if isinstance(rise, (int, float)) and rise > 0 else None
    if budget is None:
        return max([x for x in xs if math.isfinite(x)], default=1.0) * 1.08 + 0.1
    near = [x for x in xs if x <= budget * 5]
    return max([budget * 2.5, *near]) * 1.08


def _trace(
    name: str,
    view: OptimizeView,
    trials: list[dict[str, Any]],
    edge: float,
    marker: dict[str, Any],
    role: str = "",
) -> dict[str, Any]:
    xs, ys, lo, hi, text, symbols = [], [], [], [], [], []
    for trial in trials:
        point = _point(view, trial)
        if point is None:
            continue
        x, y = point
        clo, chi = ci95(metrics(trial).get("energy_j_per_token"))
        xs.append(min(x, edge))
        ys.append(y)
        lo.append(_spread(y, clo, -1))
        hi.append(_spread(y, chi, 1))
        off = f"<br><i>off-scale: {format_increase(x / 100)} (pinned to the edge)</i>"
        text.append(_hover(view, trial, role) + (off if x > edge else ""))
        symbols.append("triangle-right" if x > edge else marker.get("symbol", "circle"))
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": xs,
        "y": ys,
        "error_y": {
            "type": "data",
            "symmetric": False,
            "array": hi,
            "arrayminus": lo,
            "color": marker.get("color", GREY),
            "thickness": 1.2,
            "width": 3,
        },
        "marker": {**marker, "symbol": symbols},
        "hovertext": text,
        "hovertemplate": "%{hovertext}<extra></extra>",
    }


def _front_line(view: OptimizeView, edge: float) -> dict[str, Any]:
    points = sorted(p for p in (_point(view, t) for t in view.front) if p is not None)
    return {
        "type": "scatter",
        "mode": "lines",
        "name": "Pareto front",
        "x": [min(x, edge) for x, _ in points],
        "y": [y for _, y in points],
        "line": {"color": BLUE, "width": 2, "shape": "hv"},
        "hoverinfo": "skip",
    }


def _budget_shapes(view: OptimizeView) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rise = view.budget.get("max_increase")
    if not isinstance(rise, (int, float)):
        return [], []
    x = rise * 100
    line = {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": x,
        "x1": x,
        "y0": 0,
        "y1": 1,
        "line": {"color": VERMILION, "width": 2, "dash": "dash"},
    }
    limit = view.budget.get("limit")
    words = f"budget +{x:g}%"
    words += (
        f" (perplexity ≤ {format_perplexity(limit)})" if isinstance(limit, (int, float)) else ""
    )
    note = {
        "x": x,
        "xref": "x",
        "y": 1,
        "yref": "paper",
        "yanchor": "bottom",
        "text": words,
        "showarrow": False,
        "font": {"color": VERMILION, "size": 12},
    }
    return [line], [note]


def _star_note(view: OptimizeView, log_y: bool, edge: float) -> list[dict[str, Any]]:
    trial = view.recommended
    point = _point(view, trial) if trial else None
    if point is None:
        return []
    x, y = point
    return [
        {
            "x": min(x, edge),
            "y": math.log10(y) if log_y else y,
            "xref": "x",
            "yref": "y",
            "text": f"recommended: {html.escape(trial_name(trial))}",
            "showarrow": True,
            "arrowhead": 2,
            "ax": 70 if x < 0.5 * edge else -70,  # label towards the open side
            "ay": -45,
            "font": {"size": 13, "color": BLACK},
            "bgcolor": "rgba(255,255,255,0.85)",
            "bordercolor": ORANGE,
        }
    ]


def _y_axis(view: OptimizeView, ys: list[float]) -> dict[str, Any]:
    title = f"{view.objective.get('name') or 'energy'} ({view.energy_unit()}), median and 95% CI"
    axis = {"title": {"text": title}, "zeroline": False, "gridcolor": "#e5e5e5"}
    positive = [y for y in ys if y > 0]
    if positive and max(positive) / min(positive) > LOG_SPAN:
        axis["type"] = "log"
    return axis


def _groups(view: OptimizeView) -> list[tuple[str, list[dict[str, Any]], dict[str, Any], str]]:
    """(legend name, trials, marker, hover role) of each marker trace, in drawing order."""
    special = {id(t) for t in (view.recommended, view.baseline) if t is not None}
    plain = [t for t in view.trials if id(t) not in special]
    star = {"color": ORANGE, "size": 20, "symbol": "star", "line": {"color": BLACK, "width": 1}}
    groups = [
        ("within budget", [t for t in plain if view.usable(t)], {"color": BLUE, "size": 9}, ""),
        ("over budget", [t for t in plain if not view.usable(t)],
         {"color": GREY, "size": 9, "symbol": "x", "opacity": 0.8}, ""),
        ("baseline", [view.baseline], {"color": BLACK, "size": 12, "symbol": "diamond"},
         "baseline"),
        ("llama.cpp default, batch 1", [view.peer],
         {"color": VERMILION, "size": 12, "symbol": "square"}, "peer"),
        ("llama.cpp default, recommendation's batch size", [view.peer_same_batch],
         {"color": VERMILION, "size": 12, "symbol": "square-open"}, "peer, same batch size"),
        ("recommended", [view.recommended], star, "recommended"),
    ]  # fmt: skip
    return [(name, [t for t in ts if t is not None], m, role) for name, ts, m, role in groups]


def pareto_figure(view: OptimizeView) -> dict[str, Any]:
    """The plotly figure (``data``, ``layout``, ``config``) of the record behind ``view``.

    Traces with no point to draw are left out (no empty legend entries).
    """
    peers = [view.peer or {}, view.peer_same_batch or {}]
    points = [p for p in (_point(view, t) for t in [*view.trials, *peers]) if p]
    edge = _x_edge(view, [x for x, _ in points])
    data = [_front_line(view, edge)]
    data += [_trace(name, view, ts, edge, m, role) for name, ts, m, role in _groups(view)]
    data = [trace for trace in data if trace["x"]]
    shapes, notes = _budget_shapes(view)
    y_axis = _y_axis(view, [y for _, y in points])
    notes += _star_note(view, y_axis.get("type") == "log", edge)
    base = format_perplexity(view.budget.get("baseline"))
    left = min([0.0, *(x for x, _ in points if math.isfinite(x))])
    pad = (edge - left) * 0.04
    layout = {
        "xaxis": {
            "title": {"text": f"perplexity increase over the baseline ({base}), %"},
            "range": [left - pad, edge + pad],
            "zeroline": True,
            "zerolinecolor": "#bbb",
            "gridcolor": "#e5e5e5",
            "ticksuffix": "%",
        },
        "yaxis": y_axis,
        "shapes": shapes,
        "annotations": notes,
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.18},
        "margin": {"l": 70, "r": 20, "t": 40, "b": 60},
        "plot_bgcolor": "white",
        "height": 540,
    }
    config = {"displaylogo": False, "responsive": True}
    return {"data": data, "layout": layout, "config": config}
