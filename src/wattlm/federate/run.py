"""``federate``: run a federated fine-tuning on Flower's simulation runtime and write
``federate.json`` (and ``report.md`` / ``report.html``).

Example:
    >>> from wattlm.federate.config import FederateConfig
    >>> cfg = FederateConfig(clients=8, rounds=10, alpha=0.5, compare_central=True)
    >>> result = federate(cfg, "runs/fed")  # doctest: +SKIP
    >>> result["totals"]["to_target"]["energy_j"]  # doctest: +SKIP
    812.4
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wattlm._files import write_json
from wattlm.errors import WattlmError
from wattlm.federate.config import FederateConfig
from wattlm.federate.report import RESULT_FILE

RESULT = RESULT_FILE
CONFIG = "config.json"
log = logging.getLogger("wattlm.federate")


def require_flower() -> str:
    """Flower's version; a clear error when the ``federate`` extra is not installed."""
    try:
        import flwr
    except ImportError:
        raise WattlmError(
            "wattlm federate needs Flower", hint="pip install 'wattlm[federate]'"
        ) from None
    return flwr.__version__


def open_out(out: Path, config: FederateConfig, *, resume: bool) -> None:
    """Check the run folder (new or empty; with ``resume``, the same config) and save the
    config there."""
    saved = out / CONFIG
    if resume:
        if not saved.is_file():
            raise WattlmError(f"nothing to resume in {out}", hint="run without --resume")
        before = FederateConfig.from_dict(json.loads(saved.read_text(encoding="utf-8")))
        if before != config:
            raise WattlmError(
                f"{out} was started with a different config", hint="resume with the same options"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise WattlmError(f"{out} is not empty", hint="pass a new --out or --resume")
    write_json(saved, config.to_dict())


def precheck(config: FederateConfig) -> dict[str, Any]:
    """Every check that can fail before Flower starts: data, partitions, model, LoRA
    targets. Returns the data description for the record."""
    from wattlm.federate.local import client_units, get_arrays, held_out, load_global_model, task_of

    parts = client_units(config)
    lm = load_global_model(config)
    test = held_out(config, lm.tokenizer)
    task = task_of(config)
    arrays = get_arrays(lm.model)
    return {
        "model": {
            "spec": config.model,
            "parameters": sum(p.numel() for p in lm.model.parameters()),
            "travelling_parameters": int(sum(a.size for a in arrays.values())),
            "travelling_tensors": len(arrays),
        },
        "data": {
            "data": config.data,
            "train_rows": sum(len(p) for p in parts),
            "eval_split": config.eval_split,
            "task": task,
            "eval_units": len(test.rows) if test.rows is not None else len(test.ids),
            "partition": config.partition,
            "clients": [
                {
                    "partition": i,
                    "rows": len(p),
                    "labels": _labels(p) if task == "sequence-classification" else {},
                }
                for i, p in enumerate(parts)
            ],
        },
    }


def _labels(rows: list[tuple[str, int]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, y in rows:
        counts[str(y)] = counts.get(str(y), 0) + 1
    return dict(sorted(counts.items()))


def simulate(config: FederateConfig, out: Path, *, resume: bool, progress: bool) -> dict[str, Any]:
    """Run the ServerApp and ClientApps on Flower's simulation runtime (Ray); the record."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from flwr.simulation import run_simulation

    from wattlm.federate.checkpoint import residual_folder
    from wattlm.federate.client import make_client_app
    from wattlm.federate.server import make_server_app

    if not progress:
        logging.getLogger("flwr").setLevel(logging.ERROR)
    server = make_server_app(config, out, resume=resume, residual_dir=residual_folder(out))
    cpus = max(os.cpu_count() or 1, config.threads)
    run_simulation(
        server_app=server,
        client_app=make_client_app(),
        num_supernodes=config.clients,
        backend_config={
            "client_resources": {"num_cpus": config.threads, "num_gpus": 0.0},
            "init_args": {"num_cpus": cpus, "include_dashboard": False, "log_to_driver": progress},
        },
    )
    if not server.result.get("rounds") and config.rounds:  # the server thread failed
        raise WattlmError(
            "the federated run stopped before any round finished", hint="see the log above"
        )
    return server.result


def federate(
    config: FederateConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    superlink: str | None = None,
) -> dict[str, Any]:
    """Run ``config`` and write ``out_dir/federate.json`` (schema-validated), ``report.md``
    and ``report.html``; return the result.

    By default the run is a simulation on this machine; ``superlink`` (a SuperLink's
    Control API address, ``host:port``) submits it with ``flwr run`` to a real deployment
    whose SuperNodes hold ``partition-id`` in their node config.
    """
    out = Path(out_dir)
    described = precheck(config)  # bad input is reported before a missing extra
    flwr_version = require_flower()
    open_out(out, config, resume=resume)
    if superlink is not None:
        from wattlm.federate.deploy import submit

        submit(config, out, superlink, resume=resume, progress=progress)
        return json.loads((out / RESULT).read_text(encoding="utf-8"))
    record = simulate(config, out, resume=resume, progress=progress)
    runtime = {"mode": "simulation", "flower_version": flwr_version, "backend": "ray"}
    return finish(config, out, record, described, runtime)


def finish(
    config: FederateConfig,
    out: Path,
    record: dict[str, Any],
    described: dict[str, Any],
    runtime: dict[str, Any],
) -> dict[str, Any]:
    """Totals, the centralised baseline (``compare_central``), ``federate.json`` and the
    reports, from the server's ``record``."""
    from wattlm._version import __version__
    from wattlm.federate.central import run_central
    from wattlm.federate.local import higher_is_better
    from wattlm.federate.report import write_reports
    from wattlm.federate.totals import central_totals, federated_totals
    from wattlm.measure.factory import make_meter
    from wattlm.report.result import validate_result

    meter = make_meter(config.meter, idle_seconds=0)
    rounds = record["rounds"]
    higher = higher_is_better(record["initial_quality"]["metric"])
    totals = federated_totals(rounds, target=config.target, higher=higher)
    central = None
    if config.compare_central:
        central = run_central(config, meter)
        central["to_target"] = central_totals(central, target=config.target, higher=higher)
    result = {
        "schema_version": 1,
        "kind": "federate",
        "wattlm_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": config.to_dict(),
        **described,
        "runtime": runtime,
        "energy": {
            "source": meter.source,
            "meter": meter.describe(),
            "idle_subtracted": bool(meter.idle_power_w()),
            "split": "each client measured in its own window over its own process's CPU time",
        },
        "initial_quality": record["initial_quality"],
        "rounds": rounds,
        "per_client": per_client(rounds, config.clients),
        "totals": totals,
        "central": central,
        "resumed_after": record.get("resumed_after", []),
        "notes": notes(config, rounds),
    }
    result = _json_safe(result)
    validate_result(result, source=RESULT)
    write_json(out / RESULT, result)
    write_reports(result, out)
    return result


def per_client(rounds: list[dict[str, Any]], clients: int) -> list[dict[str, Any]]:
    """Each client's joules, bytes and finished/failed rounds over the whole run."""
    out = []
    for p in range(clients):
        mine = [c for r in rounds for c in r["clients"] if c["partition"] == p]
        energies = [c.get("energy_j") for c in mine if c["status"] == "ok"]
        out.append(
            {
                "partition": p,
                "rounds_ok": sum(1 for c in mine if c["status"] == "ok"),
                "rounds_failed": sum(1 for c in mine if c["status"] != "ok"),
                "energy_j": None if None in energies else float(sum(energies)),
                "bytes": sum(c["uplink_bytes"] + c["downlink_bytes"] for c in mine),
            }
        )
    return out


def notes(config: FederateConfig, rounds: Sequence[dict[str, Any]] = ()) -> list[str]:
    """Caveats a reader of the figures must know (``rounds``: the record's rounds).

    Example:
        >>> cfg = FederateConfig(clients=2, compression="topk")
        >>> ok = {"partition": 0, "status": "ok", "residual_stored": True}
        >>> notes(cfg, [{"clients": [ok, {**ok, "partition": 1, "residual_stored": False}]}])[-1][:52]
        'top-k residuals of clients [1] live only in their Fl'
        >>> notes(cfg, [{"clients": [ok]}])[-1][:52]
        'top-k error-feedback residuals are saved by every cl'
    """
    out = [
        "simulation: all clients share one machine; each client's window is charged the CPU "
        "time of the process running it, one client at a time (estimate) — a sensor would "
        "see the whole machine and could not split it",
        "bytes are the serialised Flower records (both ways); transport framing not included",
    ]
    if config.compression == "topk":
        memory_only = sorted(
            {
                c["partition"]
                for r in rounds
                for c in r["clients"]
                if c.get("residual_stored") is False
            }
        )
        if memory_only:
            out.append(
                f"top-k residuals of clients {memory_only} live only in their Flower context "
                "(no residual folder: a SuperNode without residual-dir in its node config); "
                "a resumed run restarts theirs at zero"
            )
        else:
            out.append(
                "top-k error-feedback residuals are saved by every client after each round; a "
                "resumed run gives each client the one it had after the checkpointed round"
            )
    return out


def _json_safe(obj: Any) -> Any:
    """NaN/inf floats become ``None`` (strict JSON)."""
    import math

    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
