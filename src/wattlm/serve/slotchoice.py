"""Choose the number of slots to serve with: least energy per request under a p99 latency limit.

One entry per slot count of a sweep (:func:`level_entry`, from a load level's summary and
request records) holds the end-to-end request latency percentiles (sending a request to
its last streamed chunk, answered requests only), the TTFT p99, throughput, the requests
lost (not answered: refused, failed, timed out or not sent) and J/request twice, from the
server's ``usage`` and from wattlm's meter of the server process, each with a 95% interval.

:func:`choose_slots` keeps the slot counts that lost no request and whose p99 latency is
at most the limit, takes the one with the least J/request (the meter's figure when every
level has one, else the server's), and among the kept ones whose interval overlaps that
one's it takes the fewest slots (less memory, same energy within the noise). When none is
kept, it names the slot count with the lowest p99 (among those that lost no request, if
any did) and says that the limit was not met.

The interval is that of the mean J/request over the level's requests (Student's t on the
server's per-request energies); the meter reads one total per level, so its interval takes
the same relative width. It shows the spread across the requests of one run, not the
run-to-run noise.

Example:
    >>> levels = [
    ...     {"slots": 1, "lost": 0, "e2e_latency_p99_ms": 900.0, "server_j_per_request": 3.0,
    ...      "server_j_per_request_ci95": [2.9, 3.1], "meter_j_per_request": None},
    ...     {"slots": 2, "lost": 0, "e2e_latency_p99_ms": 400.0, "server_j_per_request": 2.0,
    ...      "server_j_per_request_ci95": [1.9, 2.1], "meter_j_per_request": None},
    ... ]
    >>> c = choose_slots(levels, slo_p99_ms=500.0)
    >>> (c["slots"], c["meets_slo"], c["energy_from"])
    (2, True, 'server')
"""

from __future__ import annotations

from typing import Any

from wattlm.measure.stats import intervals_overlap, mean_interval

#: what the sweep's latency figures are
LATENCY = (
    "end-to-end request latency: from sending a request to its last streamed chunk, "
    "answered requests only"
)


def level_entry(slots: int, summary: dict[str, Any], energies_j: list[float]) -> dict[str, Any]:
    """One slot count's figures for the ``sweep`` section of ``loadtest.json``.

    ``summary`` is :func:`~wattlm.serve.loadstats.summarise`'s; ``energies_j`` the
    ``energy_j`` of each answered request (from the server's ``usage``).

    Example:
        >>> s = {"requests": 3, "ok": 3, "errors": {}, "requests_per_s": 1.5,
        ...      "output_tokens_per_s": 12.0, "latency": {"p50_ms": 10.0, "p95_ms": 19.0,
        ...      "p99_ms": 19.8}, "ttft": {"p99_ms": 4.0}, "server_energy_j_per_request": 2.0,
        ...      "meter_energy_j_per_request": 4.0}
        >>> e = level_entry(2, s, [1.0, 2.0, 3.0])
        >>> (e["lost"], e["e2e_latency_p99_ms"], e["meter_j_per_request_ci95"])
        (0, 19.8, [0.0, 8.968276])
    """
    server_j = summary["server_energy_j_per_request"]
    meter_j = summary["meter_energy_j_per_request"]
    server_ci = mean_interval(energies_j)
    meter_ci = None
    if server_ci is not None and meter_j is not None and server_j:
        meter_ci = [round(meter_j * b / server_j, 6) for b in server_ci]
    latency = summary["latency"]
    return {
        "slots": slots,
        "requests": summary["requests"],
        "ok": summary["ok"],
        "lost": summary["requests"] - summary["ok"],
        "errors": summary["errors"],
        "e2e_latency_p50_ms": latency.get("p50_ms"),
        "e2e_latency_p95_ms": latency.get("p95_ms"),
        "e2e_latency_p99_ms": latency.get("p99_ms"),
        "ttft_p99_ms": summary["ttft"].get("p99_ms"),
        "requests_per_s": summary["requests_per_s"],
        "output_tokens_per_s": summary["output_tokens_per_s"],
        "server_j_per_request": server_j,
        "server_j_per_request_ci95": list(server_ci) if server_ci is not None else None,
        "meter_j_per_request": meter_j,
        "meter_j_per_request_ci95": meter_ci,
    }


def _n_slots(n: int) -> str:
    return f"{n} slot" if n == 1 else f"{n} slots"


def _meets(level: dict[str, Any], slo_p99_ms: float | None) -> bool:
    p99 = level.get("e2e_latency_p99_ms")
    if level.get("lost", 1) != 0 or p99 is None:
        return False
    return slo_p99_ms is None or p99 <= slo_p99_ms


def choose_slots(levels: list[dict[str, Any]], slo_p99_ms: float | None) -> dict[str, Any]:
    """The choice among ``levels`` (:func:`level_entry` dicts) under ``slo_p99_ms``.

    ``slo_p99_ms=None``: no latency limit (only lost requests exclude a level). Returns
    ``slots`` (``None`` when no level answered a request), ``meets_slo``, ``energy_from``
    (``meter`` or ``server``), ``j_per_request``, ``tied_with`` (the slot counts whose
    interval overlapped the least one's) and ``reason`` (one sentence).
    """
    meter = bool(levels) and all(lv.get("meter_j_per_request") is not None for lv in levels)
    source = "meter" if meter else "server"

    def energy(lv: dict[str, Any]) -> float | None:
        return lv.get(f"{source}_j_per_request")

    limit = "no latency limit" if slo_p99_ms is None else f"p99 ≤ {slo_p99_ms:g} ms"
    kept = [lv for lv in levels if _meets(lv, slo_p99_ms)]
    out: dict[str, Any] = {"slo_p99_ms": slo_p99_ms, "energy_from": source, "tied_with": []}
    if kept:
        measured = [lv for lv in kept if energy(lv) is not None]
        if not measured:
            pick = min(kept, key=lambda lv: lv["slots"])
            reason = f"fewest slots with {limit} and no lost request (no energy figure)"
            return {**out, "slots": pick["slots"], "meets_slo": True, "j_per_request": None,
                    "reason": reason}  # fmt: skip
        best = min(measured, key=lambda lv: (energy(lv), lv["slots"]))
        ci_best = best.get(f"{source}_j_per_request_ci95")
        tied = [
            lv
            for lv in measured
            if lv is best
            or (
                ci_best is not None
                and lv.get(f"{source}_j_per_request_ci95") is not None
                and intervals_overlap(tuple(ci_best), tuple(lv[f"{source}_j_per_request_ci95"]))
            )
        ]
        pick = min(tied, key=lambda lv: lv["slots"])
        reason = f"least J/request ({source}) with {limit} and no lost request"
        if pick is not best:
            reason += (
                f"; {_n_slots(pick['slots'])} tie with {best['slots']} (95% intervals overlap), "
                "fewer slots use less memory"
            )
        return {
            **out,
            "slots": pick["slots"],
            "meets_slo": True,
            "j_per_request": energy(pick),
            "tied_with": sorted(lv["slots"] for lv in tied if lv is not pick),
            "reason": reason,
        }
    answered = [lv for lv in levels if lv.get("e2e_latency_p99_ms") is not None]
    pool = [lv for lv in answered if lv.get("lost") == 0] or answered
    if not pool:
        return {**out, "slots": None, "meets_slo": False, "j_per_request": None,
                "reason": "no slot count answered a request"}  # fmt: skip
    pick = min(pool, key=lambda lv: (lv["e2e_latency_p99_ms"], lv["slots"]))
    reason = (
        f"no slot count met {limit} without losing a request; {_n_slots(pick['slots'])} had the "
        f"lowest p99 ({pick['e2e_latency_p99_ms']:g} ms)"
    )
    if pick.get("lost"):
        reason += f" but lost {pick['lost']} request{'' if pick['lost'] == 1 else 's'}"
    return {**out, "slots": pick["slots"], "meets_slo": False, "j_per_request": energy(pick),
            "reason": reason}  # fmt: skip
