"""Formatting shared by the Markdown report and the terminal table (numbers, bytes, the
machine context, the quality sentence).

Example:
    >>> format_number(0.02569), format_bytes(538_060_032)
    ('0.0257', '538.1 MB')
"""

from __future__ import annotations

import math
from typing import Any

ESTIMATE_MARK = "†"
NOISY_MARK = "⚠"
ESTIMATE_NOTE = "not measured by a sensor: CPU time × per-core power model; see docs/energy.md"
J_PER_KWH = 3.6e6


def format_number(x: float) -> str:
    """About three significant figures, never scientific for everyday magnitudes.

    Example:
        >>> [format_number(v) for v in (1158.4, 17.59, 3.584, 0.02569, 0.0000123, 0)]
        ['1158', '17.6', '3.58', '0.0257', '1.23e-05', '0']
    """
    size = abs(x)
    if size == 0:
        return "0"
    if size >= 100:
        return f"{x:.0f}"
    if size >= 1e-4:
        return f"{x:.{max(0, 2 - math.floor(math.log10(size)))}f}"
    return f"{x:.2e}"


def format_stat(stat: dict[str, Any] | None, scale: float = 1.0) -> str:
    """``median [lo, hi]`` (times ``scale``), ``⚠`` when noisy, ``—`` when there is none.

    Example:
        >>> format_stat({"median": 17.6, "ci95_low": 17.2, "ci95_high": 18.1, "ci_method":
        ...     "order-statistic", "cv": 0.12, "n": 5, "noisy": True, "unit": "tokens/s"})
        '17.6 [17.2, 18.1] ⚠'
    """
    if stat is None:
        return "—"
    text = format_number(stat["median"] * scale)
    lo, hi = stat["ci95_low"], stat["ci95_high"]
    if stat["ci_method"] != "none" and lo is not None and hi is not None:
        text += f" [{format_number(lo * scale)}, {format_number(hi * scale)}]"
    return f"{text} {NOISY_MARK}" if stat["noisy"] else text


def format_bytes(n: int | None) -> str:
    """Decimal units: ``format_bytes(538060032) == '538.1 MB'``."""
    if n is None:
        return "—"
    value, unit = float(n), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    if unit == "B":
        return f"{n} B"
    return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"


def format_count(n: int) -> str:
    """Thousands, millions, billions: ``format_count(134_515_008) == '134.5 M'``."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(n)


def source_label(source: str) -> str:
    """The energy source as shown in tables: estimates get the ``†`` footnote mark."""
    return f"{source}{ESTIMATE_MARK}" if source.startswith("estimate:") else source


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value) or "none"
    return str(value)


def _cpu(cpu: Any) -> str:
    """``model_name (N logical, M physical, K usable cores; flags)`` from the context's CPU."""
    if not isinstance(cpu, dict):
        return _plain(cpu)
    name = cpu.get("model_name") or cpu.get("name") or "unknown CPU"
    kinds = (
        ("logical_cores", "logical"),
        ("physical_cores", "physical"),
        ("affinity_cores", "usable"),
    )
    cores = [f"{cpu[k]} {word}" for k, word in kinds if cpu.get(k) is not None]
    parts = [", ".join(cores) + " cores"] if cores else []
    parts += [" ".join(cpu["flags"])] if cpu.get("flags") else []
    return f"{name} ({'; '.join(parts)})" if parts else str(name)


def _gpus(gpus: Any) -> str:
    if not isinstance(gpus, list):
        return _plain(gpus)
    names = [g.get("name", _plain(g)) if isinstance(g, dict) else str(g) for g in gpus]
    return ", ".join(names) or "none"


def _pick(key: str) -> Any:
    """Show one field of a mapping (e.g. the OS ``platform``), else the whole value."""
    return lambda v: str(v[key]) if isinstance(v, dict) and key in v else _plain(v)


_CONTEXT = [  # (key, label, how to show it); the rest of the context stays in result.json
    ("cpu", "CPU", _cpu),
    ("threads", "threads", _plain),
    ("gpus", "GPUs", _gpus),
    ("ram_bytes", "RAM", lambda v: format_bytes(v) if isinstance(v, int) else _plain(v)),
    ("os", "OS", _pick("platform")),
    ("python", "Python", _pick("version")),
    ("libraries", "libraries", _plain),
    ("wattlm_version", "wattlm", _plain),
]


def context_lines(context: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, text)`` for the context facts a report shows: CPU, threads, GPUs, RAM, OS,
    Python, library versions and the wattlm version."""
    shown = [(k, label, show) for k, label, show in _CONTEXT if context.get(k) is not None]
    return [(label, show(context[key])) for key, label, show in shown]


def quality_sentence(quality: dict[str, Any] | None) -> str:
    """One sentence on the result's quality figure and how it was measured (Markdown).

    Example:
        >>> quality_sentence(None)
        'Not measured.'
    """
    if quality is None:
        return "Not measured."
    how = f"{quality['backend']}, {quality['dtype']}"
    if quality["metric"] == "perplexity":
        return (
            f"Perplexity **{quality['value']:.2f}** on {quality['data']} ({quality['split']} "
            f"split, {quality['tokens']} tokens; sliding window {quality['max_length']}, "
            f"stride {quality['stride']}; {how})."
        )
    return (
        f"Accuracy **{quality['value']:.1%}** on {quality['data']} ({quality['split']} split, "
        f"{quality['samples']} samples; {how})."
    )


def served_quality_sentences(result: dict[str, Any]) -> list[str]:
    """Sentences on quality measured by each runtime itself and on fidelity (Markdown).

    Example:
        >>> r = {"runtime_quality": {"llamacpp": {"value": 20.2, "method": "m",
        ...      "cross_check": {"backend": "torch", "value": 20.0, "relative_difference": 0.01}}}}
        >>> served_quality_sentences(r)[0]
        'On llamacpp itself: perplexity **20.20** (torch on the same weights: 20.00, +1.00%; m).'
    """
    lines = []
    for backend, q in (result.get("runtime_quality") or {}).items():
        check = q.get("cross_check")
        versus = (
            f"{check['backend']} on the same weights: {check['value']:.2f}, "
            f"{check['relative_difference']:+.2%}; "
            if check
            else ""
        )
        lines.append(
            f"On {backend} itself: perplexity **{q['value']:.2f}** ({versus}{q['method']})."
        )
    for backend, f in (result.get("fidelity") or {}).items():
        lines.append(
            f"Fidelity on {backend} to the original: KL mean **{f['kl_mean']:.4f}** nats "
            f"(p99 {f['kl_p99']:.4f}), top-1 agreement {f['top1_agreement']:.1%} over "
            f"{f['tokens']} tokens."
        )
    return lines
