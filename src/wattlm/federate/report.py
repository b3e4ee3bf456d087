"""``report.md`` and ``report.html`` of a federated run: quality against cumulative energy and
against cumulative bytes, and each client's joules per round (bars), from ``federate.json``.

The HTML inlines the plotly.js bundle (opens offline). Every energy figure keeps its source
label; failed or rejected client updates are listed with their reasons.

Example:
    >>> md = render_markdown({"config": {"model": "m", "data": "d", "clients": 1,
    ...     "rounds": 0, "strategy": "fedavg", "compression": "none", "target": 0.8},
    ...     "data": {"partition": "iid"}, "energy": {"source": "fake"},
    ...     "initial_quality": {"value": 0.5}, "rounds": [], "totals": {"energy_j": 0.0,
    ...     "bytes": 0, "final_quality": None, "to_target": {"reached": False}},
    ...     "central": None, "per_client": []})
    >>> md.splitlines()[0]
    '# wattlm federate: m on d'
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from wattlm._files import write_text

#: what a federated run writes, and the reports made from it
RESULT_FILE = "federate.json"
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"


def _j(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} J"


def _b(value: int | None) -> str:
    if value is None:
        return "n/a"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:,.2f} {unit}"
    return f"{value} B"


def _q(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_markdown(result: dict[str, Any]) -> str:
    """The run in Markdown: headline, federated vs centralised, rounds, clients, failures."""
    cfg, tot, src = result["config"], result["totals"], result["energy"]["source"]
    lines = [
        f"# wattlm federate: {cfg['model']} on {cfg['data']}",
        "",
        f"{cfg['clients']} clients ({result['data']['partition']}), {cfg['rounds']} rounds, "
        f"strategy {cfg['strategy']}, update compression {cfg['compression']}. "
        f"Energy source: `{src}`.",
        "",
        f"| | quality | training energy | bytes | energy to reach {cfg['target']:g} |",
        "|---|---|---|---|---|",
        f"| federated | {_q(tot['final_quality'])} | {_j(tot['energy_j'])} | {_b(tot['bytes'])} "
        f"| {_target(tot['to_target'])} |",
    ]
    central = result.get("central")
    if central:
        lines.append(
            f"| centralised | {_q(central['final_quality'])} | {_j(central['energy_j'])} | 0 B "
            f"| {_target(central['to_target'])} |"
        )
    lines += [
        "",
        "## Rounds",
        "",
        "| round | accuracy | updates used | failed | clients' energy | cumulative energy | "
        "cumulative bytes |",
        "|---|---|---|---|---|---|---|",
        f"| 0 | {_q(result['initial_quality']['value'])} | | | | | |",
    ]
    for r in result["rounds"]:
        energy = sum(c.get("energy_j") or 0.0 for c in r["clients"])
        lines.append(
            f"| {r['round']} | {_q(r['quality']['value'])} | {r['aggregated']} | "
            f"{', '.join(str(p) for p in r['failed']) or '-'} | {_j(energy)} | "
            f"{_j(r['cumulative']['energy_j'])} | {_b(r['cumulative']['bytes'])} |"
        )
    lines += [
        "",
        "## Clients",
        "",
        "| client | rounds ok | failed | energy | bytes |",
        "|---|---|---|---|---|",
    ]
    for c in result["per_client"]:
        lines.append(
            f"| {c['partition']} | {c['rounds_ok']} | {c['rounds_failed']} | {_j(c['energy_j'])} "
            f"| {_b(c['bytes'])} |"
        )
    problems = [
        (r["round"], c) for r in result["rounds"] for c in r["clients"] if c["status"] != "ok"
    ]
    if problems:
        lines += ["", "## Failed and rejected updates", ""]
        lines += [
            f"- round {rnd}, client {c['partition']}: {c['status']} ({c['reason']})"
            for rnd, c in problems
        ]
    notes = result.get("notes") or []
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def _target(t: dict[str, Any]) -> str:
    if not t.get("reached"):
        return "not reached"
    return f"{_j(t['energy_j'])} (round {t['round']})"


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Plotly figure specs: quality vs cumulative joules, vs cumulative bytes, client bars."""
    rounds = result["rounds"]
    q0 = result["initial_quality"]["value"]
    xs_e = [0.0] + [r["cumulative"]["energy_j"] for r in rounds]
    xs_b = [0] + [r["cumulative"]["bytes"] for r in rounds]
    ys = [q0] + [r["quality"]["value"] for r in rounds]
    src = result["energy"]["source"]
    fed = {"type": "scatter", "mode": "lines+markers", "name": "federated", "x": xs_e, "y": ys}
    traces_e = [fed]
    central = result.get("central")
    if central:
        acc, e, xs = [q0], 0.0, [0.0]
        for r in central["rounds"]:
            e += r["energy_j"] or 0.0
            xs.append(e)
            acc.append(r["quality"])
        traces_e.append(
            {"type": "scatter", "mode": "lines+markers", "name": "centralised", "x": xs, "y": acc}
        )
    bars = []
    for p in range(result["config"]["clients"]):
        x, y = [], []
        for r in rounds:
            for c in r["clients"]:
                if c["partition"] == p:
                    x.append(r["round"])
                    y.append(c.get("energy_j") or 0.0)
        bars.append({"type": "bar", "name": f"client {p}", "x": x, "y": y})
    return [
        {
            "data": traces_e,
            "layout": {
                "title": {"text": "Quality vs cumulative training energy"},
                "xaxis": {"title": {"text": f"joules ({src})"}},
                "yaxis": {"title": {"text": "accuracy"}},
            },
        },
        {
            "data": [{**fed, "x": xs_b}],
            "layout": {
                "title": {"text": "Quality vs cumulative bytes"},
                "xaxis": {"title": {"text": "bytes (serialised records, both ways)"}},
                "yaxis": {"title": {"text": "accuracy"}},
            },
        },
        {
            "data": bars,
            "layout": {
                "barmode": "stack",
                "title": {"text": "Client energy per round"},
                "xaxis": {"title": {"text": "round"}, "dtick": 1},
                "yaxis": {"title": {"text": f"joules ({src})"}},
            },
        },
    ]


def render_html(result: dict[str, Any]) -> str:
    """A self-contained page: the three plots and the Markdown tables as preformatted text."""
    from plotly.offline import get_plotlyjs

    figs = json.dumps(figures(result)).replace("</", "<\\/")
    md = html.escape(render_markdown(result))
    title = html.escape(
        f"wattlm federate: {result['config']['model']} on {result['config']['data']}"
    )
    divs = "".join(f'<div id="fig{i}" style="height:420px"></div>' for i in range(3))
    script = (
        f"const figs = {figs};"
        "figs.forEach((f, i) => Plotly.newPlot('fig' + i, f.data, f.layout, {responsive: true}));"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<script>{get_plotlyjs()}</script></head><body style='font-family:sans-serif'>"
        f"<h1>{title}</h1>{divs}<pre>{md}</pre><script>{script}</script></body></html>\n"
    )


def federate_file(path: str | Path) -> Path | None:
    """The ``federate.json`` that ``path`` names (the file, or a run folder holding it), or
    ``None`` when it names something else (``wattlm report`` then tries other kinds).

    Example:
        >>> federate_file("no/such/folder") is None
        True
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    return path if path.name == RESULT_FILE and path.is_file() else None


def write_reports(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``report.html`` and ``report.md`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    return [
        write_text(out / HTML_FILE, render_html(result)),
        write_text(out / MARKDOWN_FILE, render_markdown(result)),
    ]
