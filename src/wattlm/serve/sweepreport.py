"""``loadtest.md`` of a slot sweep: one row per slot count, then the choice and its command.

Example:
    >>> entry = {"slots": 2, "ok": 4, "requests": 4, "lost": 0, "errors": {},
    ...          "e2e_latency_p50_ms": 100.0, "e2e_latency_p95_ms": 150.0,
    ...          "e2e_latency_p99_ms": 190.0, "ttft_p99_ms": 20.0, "requests_per_s": 1.9,
    ...          "output_tokens_per_s": 15.0, "server_j_per_request": 2.0,
    ...          "server_j_per_request_ci95": [1.5, 2.5], "meter_j_per_request": None,
    ...          "meter_j_per_request_ci95": None}
    >>> rec = {"target": "wattlm serve m.gguf", "notes": [],
    ...        "config": {"requests": 4, "concurrency": 2, "arrival": "poisson"},
    ...        "sweep": {"rate": 2.0, "slo_p99_ms": 500.0, "latency": "end-to-end",
    ...                  "levels": [entry]},
    ...        "choice": {"slots": 2, "meets_slo": True, "reason": "least J/request",
    ...                   "command": "wattlm serve m.gguf --slots 2"}}
    >>> md = render_sweep_markdown(rec)
    >>> "| 2 | 4/4 | 100.0 | 150.0 | 190.0 | 20.0 | 1.90 | 15.0 | 2 (1.5–2.5) | – | none |" in md
    True
"""

from __future__ import annotations

from typing import Any

from wattlm.serve.loadreport import _f, _sig


def _with_ci(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "–"
    return _sig(value) + (f" ({_sig(ci[0])}–{_sig(ci[1])})" if ci else "")


def render_sweep_markdown(record: dict[str, Any]) -> str:
    """The report of a slot-sweep loadtest record."""
    cfg, sweep, choice = record["config"], record["sweep"], record["choice"]
    slo = sweep["slo_p99_ms"]
    lines = [
        "# Load test: slots under a latency objective",
        "",
        f"Target {record['target']}.",
        f"{cfg['requests']} requests per slot count at {sweep['rate']:g} requests/s "
        f"({cfg['arrival']} arrivals), concurrency {cfg['concurrency']}; objective: "
        + ("none" if slo is None else f"p99 end-to-end latency ≤ {slo:g} ms")
        + ", no lost request.",
        f"Latency: {sweep['latency']}.",
        "",
        "| slots | ok/requests | p50 ms | p95 ms | p99 ms | TTFT p99 ms | req/s | out tok/s "
        "| J/request (server, 95% CI) | J/request (meter, 95% CI) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in sweep["levels"]:
        errors = ", ".join(f"{k}: {v}" for k, v in e["errors"].items()) or "none"
        lines.append(
            f"| {e['slots']} | {e['ok']}/{e['requests']} | {_f(e['e2e_latency_p50_ms'])} "
            f"| {_f(e['e2e_latency_p95_ms'])} | {_f(e['e2e_latency_p99_ms'])} "
            f"| {_f(e['ttft_p99_ms'])} | {_f(e['requests_per_s'], 2)} "
            f"| {_f(e['output_tokens_per_s'])} "
            f"| {_with_ci(e['server_j_per_request'], e['server_j_per_request_ci95'])} "
            f"| {_with_ci(e['meter_j_per_request'], e['meter_j_per_request_ci95'])} "
            f"| {errors} |"
        )
    lines += ["", "## Choice", ""]
    if choice["slots"] is None:
        lines.append(f"None: {choice['reason']}.")
    else:
        verdict = "meets the objective" if choice["meets_slo"] else "does NOT meet the objective"
        lines += [
            f"**{choice['slots']} slot{'' if choice['slots'] == 1 else 's'}** ({verdict}): "
            f"{choice['reason']}.",
            "",
            "```bash",
            choice["command"],
            "```",
        ]
    lines += [""] + [f"- {n}" for n in record.get("notes", [])]
    return "\n".join(lines) + "\n"
