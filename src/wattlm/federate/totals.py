"""Totals of a federated run: joules and bytes overall, cumulatively per round, and to reach a
target quality (cost-to-target).

Training energy is the clients' local training plus the server's aggregation; evaluation
energy is reported apart (the centralised baseline is scored the same way and also not
charged for it).

Example:
    >>> rounds = [
    ...     {"round": 1, "quality": {"value": 0.7}, "server": {"aggregate_energy_j": 1.0},
    ...      "clients": [{"status": "ok", "energy_j": 10.0, "uplink_bytes": 5,
    ...                  "downlink_bytes": 7}]},
    ...     {"round": 2, "quality": {"value": 0.85}, "server": {"aggregate_energy_j": 1.0},
    ...      "clients": [{"status": "ok", "energy_j": 10.0, "uplink_bytes": 5,
    ...                  "downlink_bytes": 7}]},
    ... ]
    >>> t = federated_totals(rounds, target=0.8)
    >>> (t["energy_j"], t["bytes"], t["to_target"]["round"], t["to_target"]["energy_j"])
    (22.0, 24, 2, 22.0)
"""

from __future__ import annotations

from typing import Any


def _sum(values: list[float | None]) -> float | None:
    """Sum, or ``None`` when any part has no figure (never a silent partial total)."""
    return None if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]


def round_energy_j(rnd: dict[str, Any]) -> float | None:
    """Training joules of one round: every client that reported, plus aggregation."""
    parts = [c.get("energy_j") for c in rnd["clients"] if "energy_j" in c]
    return _sum([*parts, rnd["server"]["aggregate_energy_j"]])


def round_bytes(rnd: dict[str, Any]) -> int:
    """Bytes both ways in one round."""
    return sum(c["uplink_bytes"] + c["downlink_bytes"] for c in rnd["clients"])


def to_target(
    points: list[tuple[int, float, float | None, int]], target: float, *, higher: bool = True
) -> dict[str, Any]:
    """First ``(round, quality, cumulative joules, cumulative bytes)`` at or beyond
    ``target`` (at or above it when ``higher`` is better, at or below it otherwise)."""
    for rnd, quality, energy, nbytes in points:
        if (quality >= target) if higher else (quality <= target):
            return {
                "target": target,
                "reached": True,
                "round": rnd,
                "energy_j": energy,
                "bytes": nbytes,
            }
    return {"target": target, "reached": False, "round": None, "energy_j": None, "bytes": None}


def federated_totals(
    rounds: list[dict[str, Any]], *, target: float, higher: bool = True
) -> dict[str, Any]:
    """Cumulative series, totals and cost-to-target of the federated rounds."""
    energy: float | None = 0.0
    nbytes = 0
    points = []
    for rnd in rounds:
        e = round_energy_j(rnd)
        energy = None if energy is None or e is None else energy + e
        nbytes += round_bytes(rnd)
        rnd["cumulative"] = {"energy_j": energy, "bytes": nbytes}
        points.append((rnd["round"], rnd["quality"]["value"], energy, nbytes))
    clients = [c for r in rounds for c in r["clients"]]
    return {
        "energy_j": energy,
        "client_energy_j": _sum([c["energy_j"] for c in clients if "energy_j" in c]),
        "server_energy_j": _sum([r["server"]["aggregate_energy_j"] for r in rounds]),
        "eval_energy_j": _sum(
            [r["quality"].get("eval_energy_j") for r in rounds if "quality" in r]
        ),
        "uplink_bytes": sum(c["uplink_bytes"] for c in clients),
        "downlink_bytes": sum(c["downlink_bytes"] for c in clients),
        "bytes": nbytes,
        "failed_updates": sum(1 for c in clients if c["status"] != "ok"),
        "final_quality": rounds[-1]["quality"]["value"] if rounds else None,
        "to_target": to_target(points, target, higher=higher),
    }


def central_totals(
    central: dict[str, Any], *, target: float, higher: bool = True
) -> dict[str, Any]:
    """Cost-to-target of the centralised baseline (no bytes travel)."""
    energy: float | None = 0.0
    points = []
    for rnd in central["rounds"]:
        energy = None if energy is None or rnd["energy_j"] is None else energy + rnd["energy_j"]
        points.append((rnd["round"], rnd["quality"], energy, 0))
    return to_target(points, target, higher=higher)
