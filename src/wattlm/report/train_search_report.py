"""``report.md`` and ``report.html`` of a ``wattlm train search`` run.

Both show the recommendation and its ``wattlm train finetune`` command, the ratio to the
default configuration, what the search cost, and every trial's energy to target; the HTML
page adds the learning curves (quality against cumulative joules, one line per trial, the
target as a dashed line) as an inline SVG.

Example:
    >>> rec = sample_train_search_record()
    >>> print(render_markdown(rec).splitlines()[0])
    # wattlm train search: minilm-l6 on movie-sentiment
    >>> "<svg" in render_html(rec)
    True
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

RESULT_FILE = "train-search.json"
HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
COLUMNS = ("#", "options", "state", "energy to target (J)", "energy spent (J)", "best quality",
           "samples")  # fmt: skip


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _cells(t: dict[str, Any], recommended: int | None) -> list[str]:
    mark = " ★" if t["number"] == recommended else ""
    state = t["state"].replace("_", " ")
    if t["state"] == "pruned" and t.get("prune_reason"):
        state += f" ({t['prune_reason']})"
    if t["state"] == "failed":
        state += f" ({t.get('error')})"
    return [f"{t['number']}{mark}", t["label"], state, _num(t["energy_to_target_j"]),
            _num(t["energy_j"]), _num(t["quality_best"]), str(t["samples"])]  # fmt: skip


def summary_lines(rec: dict[str, Any]) -> list[str]:
    """The headline sentences (plain text), shared by both reports and the CLI."""
    target = rec["target"]
    by_number = {t["number"]: t for t in rec["trials"]}
    pick = by_number.get(rec["recommended"])
    cost = rec["search_cost"]
    source = rec.get("energy_source") or "no source"
    lines = [f"target: {target['metric']} {target['value']:g} on the held-out split"]
    if pick is None:
        lines.append(f"no trial reached the target ({rec['why']})")
    else:
        lines.append(
            f"recommended: trial {pick['number']} ({pick['label']}): "
            f"{pick['energy_to_target_j']:.4g} J to target in {pick['steps']} steps "
            f"[{source}]; {rec['why']}"
        )
    ratio = rec["ratios"]["energy_to_target_default_over_recommended"]
    default = by_number[rec["default"]]
    if pick is not None and pick["number"] == rec["default"]:
        lines.append("the defaults were the cheapest configuration tried")
    elif ratio is not None:
        lines.append(
            f"default ({default['label']}): {default['energy_to_target_j']:.4g} J to target: "
            f"the recommendation needs {ratio:.2f}× less energy"
        )
    else:
        lines.append(f"default ({default['label']}): {default['state'].replace('_', ' ')}")
    payback = cost["payback_runs"]
    lines.append(
        f"the search cost {cost['energy_j']:.4g} J over {cost['trials']} trials "
        f"({cost['pruned']} pruned, {cost['pruned_energy_j']:.4g} J in pruned trials)"
        + (f"; it pays back after {payback:.1f} training runs" if payback is not None else "")
    )
    if rec.get("recommended_command"):
        lines.append(f"train it: {rec['recommended_command']}")
    return lines


def render_markdown(rec: dict[str, Any]) -> str:
    """The Markdown report."""
    cfg = rec["config"]
    out = [f"# wattlm train search: {cfg['model']} on {cfg['data']}", ""]
    out += [f"- {line}" for line in summary_lines(rec)]
    out += ["", "## Trials", "", "| " + " | ".join(COLUMNS) + " |",
            "|" + "|".join("---" for _ in COLUMNS) + "|"]  # fmt: skip
    for t in rec["trials"]:
        cells = [c.replace("|", "\\|") for c in _cells(t, rec["recommended"])]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", f"Pareto front (energy spent vs best quality): {rec['pareto']}", ""]
    if rec["ties"]:
        out += [f"Ties (95% intervals overlap): {rec['ties']}", ""]
    out += ["## Notes", ""] + [f"- {n}" for n in rec["notes"]] + [""]
    return "\n".join(out)


def _svg(rec: dict[str, Any], width: int = 640, height: int = 320) -> str:
    curves = [t for t in rec["trials"] if t["curve"]]
    pad = 40
    energies = [p["energy_j"] for t in curves for p in t["curve"]] or [1.0]
    qualities = [p["quality"] for t in curves for p in t["curve"]] + [rec["target"]["value"]]
    e_max = max(energies) or 1.0
    q_lo, q_hi = min(qualities), max(qualities)
    q_span = (q_hi - q_lo) or 1.0

    def xy(e: float, q: float) -> str:
        x = pad + (width - 2 * pad) * e / e_max
        y = height - pad - (height - 2 * pad) * (q - q_lo) / q_span
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'role="img" aria-label="learning curves against cumulative joules">']  # fmt: skip
    ty = xy(0, rec["target"]["value"]).split(",")[1]
    parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{ty}" y2="{ty}" '
                 'stroke="#888" stroke-dasharray="4 3"/>')  # fmt: skip
    for t in curves:
        color = "#d62728" if t["number"] == rec["recommended"] else (
            "#1f77b4" if t["number"] == rec["default"] else "#bbb")  # fmt: skip
        points = " ".join(xy(p["energy_j"], p["quality"]) for p in t["curve"])
        parts.append(f'<polyline fill="none" stroke="{color}" points="{points}">'
                     f"<title>#{t['number']} {html.escape(t['label'])}</title></polyline>")  # fmt: skip
    parts.append(f'<text x="{pad}" y="{height - 8}" font-size="12">cumulative training energy '
                 f"(J, 0 to {e_max:.4g})</text>")  # fmt: skip
    parts.append(f'<text x="4" y="{pad - 12}" font-size="12">{html.escape(rec["target"]["metric"])}'
                 f" ({q_lo:.3g} to {q_hi:.3g}); dashed: target</text></svg>")  # fmt: skip
    return "".join(parts)


def render_html(rec: dict[str, Any]) -> str:
    """The HTML report (one self-contained page)."""
    cfg = rec["config"]
    esc = html.escape
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in _cells(t, rec["recommended"])) + "</tr>"
        for t in rec["trials"]
    )
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    items = "".join(f"<li>{esc(line)}</li>" for line in summary_lines(rec))
    notes = "".join(f"<li>{esc(n)}</li>" for n in rec["notes"])
    title = f"wattlm train search: {cfg['model']} on {cfg['data']}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{border-bottom:1px solid #ddd;padding:2px 6px;text-align:left}</style></head>"
        f"<body><h1>{esc(title)}</h1><ul>{items}</ul>"
        "<h2>Learning curves</h2><p>Red: the recommendation; blue: the default.</p>"
        f"{_svg(rec)}<h2>Trials</h2><table><tr>{head}</tr>{rows}</table>"
        f"<p>Pareto front (energy spent vs best quality): {esc(str(rec['pareto']))}</p>"
        f"<h2>Notes</h2><ul>{notes}</ul></body></html>\n"
    )


def train_search_file(path: str | os.PathLike[str]) -> Path | None:
    """The ``train-search.json`` that ``path`` names (the file, or a run folder holding it),
    or ``None`` when it names something else."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    return path if path.name == RESULT_FILE and path.is_file() else None


def write_reports(record: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``report.html`` and ``report.md`` into ``out_dir``; returns their paths."""
    from wattlm._files import write_text

    out = Path(out_dir)
    return [
        write_text(out / HTML_FILE, render_html(record)),
        write_text(out / MARKDOWN_FILE, render_markdown(record)),
    ]


def sample_train_search_record() -> dict[str, Any]:
    """A small, valid ``train-search.json`` record (doctests, report tests)."""

    def trial(number, label, state, e_target, energy, q, curve):
        return {"number": number, "label": label, "params": {}, "state": state,
                "feasible": state == "reached", "error": None, "energy_to_target_j": e_target,
                "energy_j": energy, "eval_energy_j": 1.0, "steps": 10, "samples": 160,
                "quality_best": q, "quality_last": q, "curve": curve, "prune_reason": None,
                "energy_source": "fake", "trainable_params": 10, "peak_rss_bytes": None,
                "duration_s": 1.0, "pareto": False}  # fmt: skip

    c0 = [{"step": 5, "samples": 80, "energy_j": 50.0, "quality": 0.7},
          {"step": 10, "samples": 160, "energy_j": 100.0, "quality": 0.86}]  # fmt: skip
    c1 = [{"step": 5, "samples": 80, "energy_j": 20.0, "quality": 0.87}]
    return {
        "schema_version": 1, "kind": "train-search", "wattlm_version": "0",
        "created_utc": "2026-11-28T00:00:00Z",
        "config": {"model": "minilm-l6", "data": "movie-sentiment", "target": 0.85,
                   "recipe": "finetune", "sampler": "tpe"},
        "target": {"metric": "accuracy", "value": 0.85, "higher_is_better": True},
        "energy_source": "fake",
        "trials": [trial(0, "default: adamw", "reached", 100.0, 100.0, 0.86, c0),
                   trial(1, "adamw · batch 32", "reached", 20.0, 20.0, 0.87, c1)],
        "default": 0, "recommended": 1, "why": "lowest energy", "ties": [], "pareto": [1],
        "ratios": {"energy_to_target_default_over_recommended": 5.0},
        "search_cost": {"energy_j": 122.0, "training_energy_j": 120.0, "eval_energy_j": 2.0,
                        "pruned_energy_j": 0.0, "trials": 2, "pruned": 0, "reached": 2,
                        "payback_runs": 1.5},
        "recommended_command": "wattlm train finetune --batch-size 32 --max-steps 5",
        "search": {"study_name": "s", "storage": "sqlite://", "sampler": "tpe", "space": {}},
        "notes": [], "elapsed_s": 1.0,
    }  # fmt: skip
