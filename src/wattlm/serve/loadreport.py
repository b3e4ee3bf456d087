"""``loadtest.md``: latency and energy against load, one row per arrival rate.

Example:
    >>> rec = {"target": "http://127.0.0.1:8000/v1", "server": None, "notes": [],
    ...        "config": {"requests": 2, "concurrency": 1, "arrival": "poisson"},
    ...        "levels": [{"rate": None, "summary": {"ok": 2, "errors": {}, "sent": 2,
    ...        "requests_per_s": 1.0, "output_tokens_per_s": 8.0, "ttft": {"p50_ms": 5.0},
    ...        "per_token": {}, "latency": {"p99_ms": 9.5}, "server_energy_j_per_request": 0.5,
    ...        "server_energy_j_per_token": 0.125, "meter_energy_j_per_request": None,
    ...        "cached_prompt_tokens": 0, "prompt_tokens": 10}}]}
    >>> "| max | 2/2 | 1.00 | 8.0 | 5.0 |" in render_markdown(rec)
    True
"""

from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _sig(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def render_markdown(record: dict[str, Any]) -> str:
    """The report of one loadtest record."""
    cfg = record["config"]
    server = record.get("server") or {}
    meta = server.get("meta") or {}
    lines = [
        "# Load test",
        "",
        f"Target `{record['target']}` · model `{server.get('id', '?')}`"
        + (f" ({meta.get('backend')}, {meta.get('slots')} slots)" if meta else ""),
        f"{cfg['requests']} requests per level, concurrency {cfg['concurrency']}, "
        f"{cfg['arrival']} arrivals.",
        "",
        "| rate (req/s) | ok/sent | req/s | out tok/s | TTFT p50 ms | TTFT p99 ms "
        "| tok p50 ms | tok p99 ms | latency p99 ms | J/request (server) | J/token (server) "
        "| J/request (meter) | cached/prompt tokens | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in record["levels"]:
        s = level["summary"]
        rate = "max" if level["rate"] is None else _f(float(level["rate"]), 2)
        errors = ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "none"
        lines.append(
            f"| {rate} | {s['ok']}/{s['sent']} | {_f(s['requests_per_s'], 2)} "
            f"| {_f(s['output_tokens_per_s'])} | {_f(s['ttft'].get('p50_ms'))} "
            f"| {_f(s['ttft'].get('p99_ms'))} | {_f(s['per_token'].get('p50_ms'))} "
            f"| {_f(s['per_token'].get('p99_ms'))} | {_f(s['latency'].get('p99_ms'))} "
            f"| {_sig(s['server_energy_j_per_request'])} "
            f"| {_sig(s['server_energy_j_per_token'])} "
            f"| {_sig(s['meter_energy_j_per_request'])} "
            f"| {s['cached_prompt_tokens']}/{s['prompt_tokens']} | {errors} |"
        )
    source = meta.get("energy_source")
    if source:
        lines += ["", f"Server energy source: `{source}`, attribution `{meta.get('attribution')}`."]
    lines += [""] + [f"- {n}" for n in record.get("notes", [])]
    return "\n".join(lines) + "\n"
