"""Summarise a load test: throughput, latency percentiles, energy per request and per token.

- TTFT: time from sending a request to its first generated text;
- per-token latency: the gaps between a request's successive text chunks (all requests'
  gaps pooled);
- energy from the server: the sum of the ``energy_j`` the server put in each answered
  request's ``usage`` (its own attribution, see ``docs/serving.md``), per request and per
  generated token;
- energy from the client's meter: what ``meter_energy_j`` says the server used over the whole
  test (idle gaps included), per answered request and per generated token.

Example:
    >>> from wattlm.serve.loadrun import RequestRecord
    >>> recs = [RequestRecord(0, 0.0, "ok", latency_s=1.0, ttft_s=0.2, completion_tokens=4,
    ...                       energy_j=2.0), RequestRecord(1, 0.1, "http_429")]
    >>> s = summarise(recs, wall_s=2.0)
    >>> (s["ok"], s["errors"], s["requests_per_s"], s["server_energy_j_per_request"])
    (1, {'http_429': 1}, 0.5, 2.0)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from wattlm.serve.loadrun import RequestRecord

PERCENTILES = (50, 95, 99)


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 in milliseconds (``None`` without values).

    Example:
        >>> percentiles([0.001, 0.002, 0.003])["p50_ms"]
        2.0
    """
    if not values:
        return {f"p{p}_ms": None for p in PERCENTILES}
    arr = np.asarray(values, dtype=float) * 1000.0
    return {f"p{p}_ms": round(float(np.percentile(arr, p)), 3) for p in PERCENTILES}


def summarise(
    records: list[RequestRecord],
    *,
    wall_s: float,
    meter_energy_j: float | None = None,
    meter_source: str | None = None,
) -> dict[str, Any]:
    """One load level's figures (see the module docstring)."""
    ok = [r for r in records if r.status == "ok"]
    errors = Counter(r.status for r in records if r.status != "ok")
    tokens = sum(r.completion_tokens or 0 for r in ok)
    prompt = sum(r.prompt_tokens or 0 for r in ok)
    cached = sum(r.cached_tokens or 0 for r in ok)
    with_energy = [r for r in ok if r.energy_j is not None]
    server_j = sum(r.energy_j for r in with_energy) if with_energy else None
    server_tokens = sum(r.completion_tokens or 0 for r in with_energy)
    gaps = [g for r in ok for g in r.token_gaps_s]
    sources = sorted({r.energy_source for r in with_energy if r.energy_source})
    return {
        "requests": len(records),
        "sent": sum(r.status != "not_sent" for r in records),
        "ok": len(ok),
        "errors": dict(sorted(errors.items())),
        "wall_s": round(wall_s, 4),
        "requests_per_s": round(len(ok) / wall_s, 4) if wall_s > 0 else None,
        "output_tokens_per_s": round(tokens / wall_s, 3) if wall_s > 0 else None,
        "prompt_tokens": prompt,
        "cached_prompt_tokens": cached,
        "completion_tokens": tokens,
        "ttft": percentiles([r.ttft_s for r in ok if r.ttft_s is not None]),
        "per_token": percentiles(gaps),
        "latency": percentiles([r.latency_s for r in ok if r.latency_s is not None]),
        "server_energy_j": server_j,
        "server_energy_j_per_request": server_j / len(with_energy) if with_energy else None,
        "server_energy_j_per_token": server_j / server_tokens if server_tokens else None,
        "server_energy_source": sources[0] if len(sources) == 1 else (sources or None),
        "meter_energy_j": meter_energy_j,
        "meter_energy_j_per_request": meter_energy_j / len(ok)
        if meter_energy_j is not None and ok
        else None,
        "meter_energy_j_per_token": meter_energy_j / tokens
        if meter_energy_j is not None and tokens
        else None,
        "meter_source": meter_source,
    }
