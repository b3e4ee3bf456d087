"""Figures and trials of an optimize record in words: number formats, stats with their
confidence intervals, configurations, energy sources. Plain text, no markup.

Record stats are ``{"median": m, "ci95": [lo, hi]}`` (the bench shape, ``ci95_low`` and
``ci95_high``, is read too); anything missing or ``null`` shows as ``—``.

Example:
    >>> format_stat({"median": 0.0703, "ci95": [0.0682, 0.0724]}), format_increase(0.0171)
    ('0.0703 [0.0682, 0.0724]', '+1.71%')
"""

from __future__ import annotations

from typing import Any

from wattlm.report._format import format_number

DASH = "—"
ESTIMATE_WORDS = "estimated, not measured"
SOURCE_EXPLAINED = {
    "nvml": "measured by the NVIDIA GPU's energy counter (NVML)",
    "rapl": "measured by the CPU's RAPL energy counters (Linux powercap)",
    "unavailable": "no energy figure: no sensor and no estimate was available",
    "fake": "a fake meter (tests only)",
}


def source_words(source: str | None) -> str:
    """How an energy source label reads in a sentence.

    Example:
        >>> source_words("estimate:cpu-tdp-v1")
        'estimated, not measured (estimate:cpu-tdp-v1: CPU time × per-core power model)'
    """
    if not source:
        return "from a source the record does not name"
    if source.startswith("estimate:"):
        return f"{ESTIMATE_WORDS} ({source}: CPU time × per-core power model)"
    return f"{SOURCE_EXPLAINED.get(source, 'source')} ({source})"


def format_stat(stat: Any, digits: Any = format_number) -> str:
    """``median [lo, hi]`` of a record stat (``{"median", "ci95": [lo, hi]}``), ``—`` if none.

    The bench shape (``ci95_low``/``ci95_high``) is read too.

    Example:
        >>> format_stat({"median": 0.0703, "ci95": [0.0682, 0.0724]}), format_stat(None)
        ('0.0703 [0.0682, 0.0724]', '—')
    """
    median = stat.get("median") if isinstance(stat, dict) else None
    if not isinstance(median, (int, float)):
        return DASH
    lo, hi = ci95(stat)
    text = digits(median)
    return text if lo is None or hi is None else f"{text} [{digits(lo)}, {digits(hi)}]"


def ci95(stat: Any) -> tuple[float | None, float | None]:
    """The (low, high) of a stat's 95% interval, ``(None, None)`` when it has none."""
    if not isinstance(stat, dict):
        return None, None
    pair = stat.get("ci95")
    if isinstance(pair, (list, tuple)) and len(pair) == 2:
        lo, hi = pair
    else:
        lo, hi = stat.get("ci95_low"), stat.get("ci95_high")
    ok = all(isinstance(v, (int, float)) for v in (lo, hi))
    return (lo, hi) if ok else (None, None)


def median(stat: Any) -> float | None:
    value = stat.get("median") if isinstance(stat, dict) else None
    return value if isinstance(value, (int, float)) else None


def format_perplexity(value: Any) -> str:
    """Two decimals (17.48 vs 17.51 matters), fewer for huge values: ``—`` for none.

    Example:
        >>> [format_perplexity(v) for v in (17.5, 488.04, 12345.6, None)]
        ['17.50', '488.0', '12346', '—']
    """
    if not isinstance(value, (int, float)):
        return DASH
    size = abs(value)
    return f"{value:.2f}" if size < 100 else f"{value:.1f}" if size < 1000 else f"{value:.0f}"


def format_increase(fraction: Any) -> str:
    """A relative change as a signed percentage: ``format_increase(0.0171) == '+1.71%'``."""
    if not isinstance(fraction, (int, float)):
        return DASH
    pct = fraction * 100
    if abs(pct) >= 100:
        return f"{pct:+.0f}%"
    return f"{pct:+.2f}%" if abs(pct) < 10 else f"{pct:+.1f}%"


def format_ratio(value: Any) -> str:
    return f"{format_number(value)}×" if isinstance(value, (int, float)) else DASH


def format_seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return DASH
    if value < 120:
        return f"{format_number(value)} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe_stages(stages: Any) -> str:
    """The compression stages in words: ``cast to bfloat16 → int4-weight (group_size 32)``."""
    if not isinstance(stages, list) or not stages:
        return "weights as loaded"
    words = []
    for stage in stages:
        if not isinstance(stage, dict):
            words.append(str(stage))
            continue
        method = str(stage.get("method", "?"))
        if method == "cast" and "dtype" in stage and len(stage) == 2:
            words.append(f"cast to {stage['dtype']}")
            continue
        args = ", ".join(f"{k} {_value(v)}" for k, v in stage.items() if k != "method")
        words.append(f"{method} ({args})" if args else method)
    return " → ".join(words)


def describe_runtime(trial: dict[str, Any]) -> str:
    """``on torch, batch 8, 2 threads``, leaving out what the trial does not record."""
    parts = [f"on {trial['backend']}"] if trial.get("backend") else []
    if trial.get("batch_size") is not None:
        parts.append(f"batch {trial['batch_size']}")
    threads = trial.get("threads")
    if threads is not None:
        parts.append(f"{threads} thread{'' if threads == 1 else 's'}")
    return ", ".join(parts)


def describe_config(trial: dict[str, Any]) -> str:
    """A trial's configuration in plain words: stages, then backend, batch and threads."""
    runtime = describe_runtime(trial)
    return f"{describe_stages(trial.get('stages'))} {runtime}".strip()


def describe_params(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return ""
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items())


def trial_name(trial: dict[str, Any]) -> str:
    """``#10 prune-ffn 10% + int4 g32, batch 8`` (no number for the peer)."""
    label = str(trial.get("label") or "unnamed")
    number = trial.get("number")
    return f"#{number} {label}" if isinstance(number, int) else label


def metrics(trial: dict[str, Any] | None) -> dict[str, Any]:
    found = trial.get("metrics") if isinstance(trial, dict) else None
    return found if isinstance(found, dict) else {}
