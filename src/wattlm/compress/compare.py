"""Before/after figures of a compression run, as data and as Markdown."""

from __future__ import annotations

from typing import Any

from wattlm.measure.stats import ci_overlap

_FIGURES = [
    # (label, path into a run, unit, higher is better)
    ("prefill tok/s", ("prefill", "tokens_per_s"), "tokens/s", True),
    ("prefill J/tok", ("prefill", "energy_j_per_token"), "J/token", False),
    ("decode tok/s", ("decode", "tokens_per_s"), "tokens/s", True),
    ("decode J/tok", ("decode", "energy_j_per_token"), "J/token", False),
]


def _median(run: dict[str, Any], path: tuple[str, str]) -> float | None:
    stat = run[path[0]][path[1]]
    return None if stat is None else stat["median"]


def compare_results(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Model-level and per-(backend, batch) figures before and after, with ratios.

    ``ci_overlap`` is True when the two 95% intervals overlap: the change is then not
    distinguishable from noise and is reported as a tie.

    Example:
        >>> from wattlm.testing.results import sample_bench_result
        >>> c = compare_results(sample_bench_result(), sample_bench_result())
        >>> c["runs"][0]["figures"][2]["ratio"]
        1.0
    """
    model = {}
    for key in ("parameters", "weight_bytes", "disk_bytes"):
        b, a = before["model"][key], after["model"][key]
        model[key] = {"before": b, "after": a, "ratio": a / b if b and a is not None else None}
    b, a = before["memory"]["peak_rss_bytes"], after["memory"]["peak_rss_bytes"]
    model["peak_rss_bytes"] = {"before": b, "after": a, "ratio": a / b if b else None}
    quality = None
    if before["quality"] and after["quality"]:
        qb, qa = before["quality"]["value"], after["quality"]["value"]
        quality = {
            "metric": before["quality"]["metric"],
            "before": qb,
            "after": qa,
            "change_pct": 100 * (qa - qb) / qb,
        }
    after_runs = {(r["backend"], r["batch_size"]): r for r in after["runs"]}
    runs = []
    for rb in before["runs"]:
        ra = after_runs.get((rb["backend"], rb["batch_size"]))
        if ra is None:
            continue
        figures = []
        for label, path, unit, higher in _FIGURES:
            vb, va = _median(rb, path), _median(ra, path)
            figures.append(
                {
                    "figure": label,
                    "unit": unit,
                    "before": vb,
                    "after": va,
                    "ratio": None if vb in (None, 0) or va is None else va / vb,
                    "higher_is_better": higher,
                    "ci_overlap": ci_overlap(rb[path[0]][path[1]], ra[path[0]][path[1]]),
                }
            )
        runs.append(
            {
                "backend": rb["backend"],
                "batch_size": rb["batch_size"],
                "energy_source": ra["energy_source"],
                "figures": figures,
            }
        )
    return {"model": model, "quality": quality, "runs": runs}


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def render_comparison(c: dict[str, Any]) -> str:
    """Markdown: what the compression bought and what it cost."""
    lines = [f"# Compression: {c['recipe']['name']}", ""]
    lines.append("Stages: " + " → ".join(s["method"] for s in c["recipe"]["stages"]) + ".")
    lines.append("")
    if c.get("quality"):
        q = c["quality"]
        lines.append(
            f"{q['metric']}: {q['before']:.3f} → {q['after']:.3f} ({q['change_pct']:+.1f}%)."
        )
        lines.append("")
    lines += ["| model | before | after | ratio |", "|---|---|---|---|"]
    for key, v in c.get("model", {}).items():
        lines.append(
            f"| {key} | {_fmt(v['before'], 6)} | {_fmt(v['after'], 6)} | {_fmt(v['ratio'])} |"
        )
    lines += [
        "",
        "| backend | batch | figure | before | after | ratio | energy source |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in c.get("runs", []):
        for f in run["figures"]:
            tie = " (tie: CIs overlap)" if f["ci_overlap"] else ""
            lines.append(
                f"| {run['backend']} | {run['batch_size']} | {f['figure']} | {_fmt(f['before'])} | "
                f"{_fmt(f['after'])} | {_fmt(f['ratio'])}{tie} | {run['energy_source']} |"
            )
    return "\n".join(lines) + "\n"
