"""Render a result as a Markdown report a person can read.

Example:
    >>> from wattlm.testing.results import sample_bench_result
    >>> print(render_markdown(sample_bench_result()).splitlines()[0])
    # wattlm bench: smollm2-135m
"""

from __future__ import annotations

import shlex
from typing import Any

from wattlm.report._format import (
    ESTIMATE_MARK,
    ESTIMATE_NOTE,
    NOISY_MARK,
    context_lines,
    format_bytes,
    format_count,
    format_number,
    quality_sentence,
    served_quality_sentences,
)
from wattlm.report.table import result_rows

_MODEL_HEADERS = [
    "model",
    "format",
    "architecture",
    "dtype",
    "parameters",
    "weights",
    "on disk",
    "peak RSS",
]


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_escape(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _when(result: dict[str, Any]) -> str:
    return result["created_utc"].replace("T", " ").removesuffix("Z") + " UTC"


def _context(result: dict[str, Any]) -> list[str]:
    lines = [f"- {label}: {_escape(text)}" for label, text in context_lines(result["context"])]
    return ["## Context", "", *lines, ""] if lines else []


def _energy(result: dict[str, Any], rows: list[list[str]]) -> list[str]:
    energy, carbon = result["energy"], result["carbon"]
    idle = "idle power subtracted" if energy["idle_subtracted"] else "idle power not subtracted"
    if result.get("schema_version", 1) >= 2:  # both views: J/tok is total, marginal beside it
        idle = "J/tok: total, idle-inclusive; marginal: " + (
            "idle power subtracted" if energy["idle_subtracted"] else "added over idle"
        )
    lines = [
        f"Energy source `{energy['source']}` ({idle}); carbon at "
        f"{format_number(carbon['grid_intensity_g_per_kwh'])} gCO2e/kWh, source: {carbon['source']}."
    ]
    if energy["source"].startswith("estimate:") or any(ESTIMATE_MARK in r[-1] for r in rows):
        lines += ["", f"{ESTIMATE_MARK} Estimate: {ESTIMATE_NOTE}."]
    bands = _bands(result)
    if bands:
        lines += [
            "",
            "Model band of decode J/tok, total view (from the power model's parameter ranges, "
            f"separate from the 95% CI): {bands}.",
        ]
    return [*lines, ""]


def _bands(result: dict[str, Any]) -> str:
    """``backend dtype batch B: low–high`` for every run whose decode figure has a band."""
    parts = []
    for run in result.get("runs", []):
        stat = run["decode"].get("energy_j_per_token") or {}
        if stat.get("band_low") is not None and stat.get("band_high") is not None:
            label = f"{run['backend']} {run['dtype']} batch {run['batch_size']}"
            low, high = format_number(stat["band_low"]), format_number(stat["band_high"])
            parts.append(f"{label}: {low}–{high}")
    return "; ".join(parts)


def _summary(result: dict[str, Any]) -> str:
    parts = [_when(result), f"wattlm {result['wattlm_version']}"]
    quality = result["quality"]
    if quality is not None and quality["metric"] == "perplexity":
        parts.append(f"perplexity {quality['value']:.2f}")
    elif quality is not None:
        parts.append(f"accuracy {quality['value']:.1%}")
    runs = result["runs"]
    measured = [r for r in runs if r["decode"]["energy_j_per_token"] is not None]
    if measured:
        best = min(measured, key=lambda r: r["decode"]["energy_j_per_token"]["median"])
        joules = format_number(best["decode"]["energy_j_per_token"]["median"])
        figure = f"lowest decode energy {joules} J/token"
    else:
        best = max(runs, key=lambda r: r["decode"]["tokens_per_s"]["median"])
        figure = (
            f"fastest decode {format_number(best['decode']['tokens_per_s']['median'])} tokens/s"
        )
    parts.append(f"{figure} ({best['backend']} {best['dtype']}, batch {best['batch_size']})")
    return " · ".join(parts)


def _setup(runs: list[dict[str, Any]]) -> str:
    """The protocol line above the performance table; settings that differ say so."""

    def same(key: str) -> Any:
        values = {r[key] for r in runs}
        return values.pop() if len(values) == 1 else "varying"

    return (
        f"Median [95% CI] over {same('repeats')} repeats (after {same('warmup')} warm-up); "
        f"prompt {same('prompt_tokens')} tokens, {same('new_tokens')} new tokens (greedy); "
        f"{same('threads')} threads on {same('device')}."
    )


def _model(result: dict[str, Any]) -> list[str]:
    model, memory = result["model"], result["memory"]
    row = [model["spec"], model["format"], model["architecture"], model["dtype"]]
    row += [format_count(model["parameters"]), format_bytes(model["weight_bytes"])]
    row += [format_bytes(model["disk_bytes"]), format_bytes(memory["peak_rss_bytes"])]
    facts = (
        f"Task {model['task']}; context length {model['context_length']} tokens; weights "
        f"resident {format_bytes(memory['weights_resident_bytes'])}; "
        f"fingerprint sha256 `{model['fingerprint_sha256'][:16]}…`."
    )
    return ["## Model", "", _table(_MODEL_HEADERS, [row]), "", facts, ""]


def _bench(result: dict[str, Any]) -> list[str]:
    headers, rows = result_rows(result)
    lines = [f"# wattlm bench: {result['model']['spec']}", "", _summary(result), ""]
    lines += [*_model(result), "## Quality", "", quality_sentence(result["quality"]), ""]
    lines += [line for s in served_quality_sentences(result) for line in (s, "")]
    setup = _setup(result["runs"])
    if any(NOISY_MARK in cell for row in rows for cell in row):
        setup += f" {NOISY_MARK} = noisy (coefficient of variation above the threshold)."
    lines += ["## Performance", "", setup, "", _table(headers, rows), "", *_energy(result, rows)]
    if result["notes"]:
        lines += ["## Notes", "", *(f"- {_escape(n)}" for n in result["notes"]), ""]
    return lines + _context(result)


def _measure(result: dict[str, Any]) -> list[str]:
    headers, rows = result_rows(result)
    command = shlex.join(result["command"])
    span = f"`` {command} ``" if "`" in command else f"`{command}`"  # survives backticks
    lines = [f"# wattlm measure: {span}", ""]
    lines += [f"{_when(result)} · wattlm {result['wattlm_version']}", ""]
    lines += [_table(headers, rows), "", *_energy(result, rows)]
    return lines + _context(result)


def render_markdown(result: dict[str, Any]) -> str:
    """The Markdown report of a valid bench or measure result (see :func:`validate_result`).

    Example:
        >>> from wattlm.testing.results import sample_measure_result
        >>> "| 0 | 12.4 | 24.1 | 180 |" in render_markdown(sample_measure_result())
        True
    """
    lines = _bench(result) if result["kind"] == "bench" else _measure(result)
    return "\n".join(lines).rstrip() + "\n"
