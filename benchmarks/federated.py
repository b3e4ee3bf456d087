"""Federated vs centralised fine-tuning of MiniLM on the movie-review sentences (issue 13).

Four arms on the same non-IID partitions (Dirichlet α over labels), model, start and
evaluation: FedAvg, FedProx (μ), FedAvg with int8 updates, and centralised training on the
union of the clients' data (taken from the FedAvg run's ``--compare-central``). One table:
final accuracy, training joules (with their source), bytes both ways, and joules and bytes
to reach ``--target`` accuracy.

Usage:
    python benchmarks/federated.py [--out runs/federated] [--clients 8] [--rounds 10]
        [--alpha 0.5] [--mu 0.01] [--lr 5e-5] [--max-train-samples N]
        [--eval-max-samples N] [--target 0.80] [--threads 1] [--quick]

``--quick`` runs 2 clients, 1 round on 64 rows (a smoke test; its figures mean nothing).
Each arm writes its own run folder (federate.json, report.md, report.html) under ``--out``.
Energy figures are ``estimate:*`` (CPU time of each client's own process): run it on a
quiet machine, or the other load inflates nothing but the wall time and the reader's doubt.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from wattlm.federate import FederateConfig, federate

ARMS = {
    "fedavg": {"strategy": "fedavg", "compare_central": True},
    "fedprox": {"strategy": "fedprox"},
    "fedavg-int8": {"strategy": "fedavg", "compression": "int8"},
}


def _j(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def _mb(v: int | None) -> str:
    return "n/a" if v is None else f"{v / 1e6:,.1f}"


def rows_of(name: str, result: dict[str, Any]) -> list[list[str]]:
    """Table rows of one arm (and of the centralised baseline it carries)."""
    t = result["totals"]
    tt = t["to_target"]
    out = [
        [
            name,
            f"{t['final_quality']:.4f}",
            _j(t["energy_j"]),
            _mb(t["bytes"]),
            _j(tt["energy_j"]) if tt["reached"] else "not reached",
            _mb(tt["bytes"]) if tt["reached"] else "-",
        ]
    ]
    c = result.get("central")
    if c:
        ct = c["to_target"]
        out.append(
            [
                "centralised",
                f"{c['final_quality']:.4f}",
                _j(c["energy_j"]),
                "0.0",
                _j(ct["energy_j"]) if ct["reached"] else "not reached",
                "0.0" if ct["reached"] else "-",
            ]
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/federated"))
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--mu", type=float, default=0.01)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--eval-max-samples", type=int, default=None)
    p.add_argument("--target", type=float, default=0.80)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of the arms")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    base: dict[str, Any] = {
        "clients": a.clients,
        "rounds": a.rounds,
        "alpha": a.alpha,
        "mu": a.mu,
        "lr": a.lr,
        "max_train_samples": a.max_train_samples,
        "eval_max_samples": a.eval_max_samples,
        "target": a.target,
        "threads": a.threads,
    }
    if a.quick:
        base.update(clients=2, rounds=1, max_train_samples=64, eval_max_samples=64)
    print(
        "$ python benchmarks/federated.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    )
    table = []
    source = None
    for name in a.arms.split(","):
        cfg = FederateConfig(**base, **ARMS[name])
        t0 = time.perf_counter()
        result = federate(cfg, a.out / name, progress=False)
        print(f"{name}: {time.perf_counter() - t0:.0f} s wall", flush=True)
        source = result["energy"]["source"]
        table += rows_of(name, result)
    head = [
        "arm",
        "accuracy",
        f"training J ({source})",
        "MB sent",
        f"J to {a.target:g}",
        f"MB to {a.target:g}",
    ]
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in table:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
