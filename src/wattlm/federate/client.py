"""The Flower ``ClientApp``: one client's local round, measured in its own energy window.

Each client (a simulated SuperNode, or a real one) receives the global
weights and the run's config, trains on its partition, and replies with its update
(encoded as the config says) plus a ``report`` record: joules of its local training with
the meter's source label, CPU and wall seconds, steps, rows. In a simulation clients run in
Ray actor processes, one client at a time per process, so the CPU-time estimate of a
client's window charges it only its own work (other clients run in other processes).

With ``topk`` the client keeps its error-feedback residual in its Flower context and, when
it has a residual folder, on disk after every round (:mod:`wattlm.federate.residuals`), so
a resumed run (a new context) picks up the residual of the checkpointed round. The folder
is the node config's ``residual-dir`` (a real SuperNode's own folder; a subfolder per run,
``run-<key>``), else the ``residual-dir`` the server sends (a simulation, whose clients
share the run folder), else none: the residual lives in memory only.

Example:
    >>> app = make_client_app()  # doctest: +SKIP
    >>> type(app).__name__  # doctest: +SKIP
    'ClientApp'
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattlm.federate.codec import encode_update, from_record, to_record
from wattlm.federate.config import FederateConfig, faults_for
from wattlm.federate.residuals import (
    drop_unfinished,
    load_residual,
    prune_residuals,
    save_residual,
)

if TYPE_CHECKING:  # pragma: no cover
    from flwr.app import Context, Message


@functools.lru_cache(maxsize=2)
def _config(job: str) -> FederateConfig:
    return FederateConfig.from_dict(json.loads(job))


@functools.lru_cache(maxsize=1)
def _model(job: str):
    from wattlm.federate.local import load_global_model

    return load_global_model(_config(job))


def _partition(context: Context) -> int:
    return int(context.node_config["partition-id"])


def residual_store(round_config, context: Context) -> Path | None:
    """The folder where this client keeps its top-k residuals, or ``None`` (memory only).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> ctx = NS(node_config={"partition-id": 0, "residual-dir": "/data/wattlm"})
        >>> residual_store({"run-key": "ab12"}, ctx).as_posix()
        '/data/wattlm/run-ab12'
        >>> residual_store({"run-key": "ab12"}, NS(node_config={"partition-id": 0})) is None
        True
    """
    own = context.node_config.get("residual-dir")
    if own:
        return Path(str(own)) / f"run-{round_config.get('run-key', 'unnamed')}"
    shared = round_config.get("residual-dir")
    return Path(str(shared)) if shared else None


def _residual_before(
    context: Context, folder: Path | None, part: int, rnd: int
) -> tuple[dict[str, Any] | None, int]:
    """The residual to add in round ``rnd`` and the round that left it (0: none).

    From the context within a run; after a resume (an empty context) from ``folder``: the
    newest residual of a round before ``rnd`` (the server sends ``rnd`` only once ``rnd − 1``
    is checkpointed); any of ``rnd`` or later is from a round that never finished and goes.
    """
    if "residual" in context.state:
        meta = context.state.get("residual-meta")
        return from_record(context.state["residual"]), int(meta["round"]) if meta else 0
    if folder is None:
        return None, 0
    drop_unfinished(folder, after=rnd - 1, partition=part)
    found = load_residual(folder, part, before=rnd)
    return (found[1], found[0]) if found else (None, 0)


def make_client_app():
    """The ``ClientApp``: :func:`hello` answers ``query`` messages, :func:`train` ``train``."""
    from flwr.clientapp import ClientApp

    app = ClientApp()
    app.query()(hello)
    app.train()(train)
    return app


def hello(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node holds."""
    from flwr.app import ConfigRecord, Message, RecordDict

    reply = ConfigRecord({"partition-id": _partition(context), "pid": os.getpid()})
    return Message(RecordDict({"hello": reply}), reply_to=msg)


def train(msg: Message, context: Context) -> Message:
    """One local round: train from the global weights, reply with the encoded update."""
    import torch
    from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict

    from wattlm.federate.local import (
        as_data,
        client_units,
        get_arrays,
        set_arrays,
        task_of,
        train_data,
    )
    from wattlm.measure.factory import make_meter

    wall0 = time.perf_counter()
    job = str(msg.content["config"]["job"])
    cfg = _config(job)
    rnd = int(msg.content["config"]["server-round"])
    part = _partition(context)
    faults = faults_for(cfg, rnd, part)
    if "crash" in faults:
        raise RuntimeError(f"injected crash of client {part} in round {rnd}")
    if "slow" in faults:
        time.sleep(cfg.timeout_s + 2.0)
    torch.set_num_threads(cfg.threads)
    lm = _model(job)
    base = from_record(msg.content["arrays"])
    set_arrays(lm.model, base)
    units = client_units(cfg)[part]
    data = as_data(units, lm.tokenizer, task_of(cfg), cfg.seq_len)

    meter = make_meter(cfg.meter, idle_seconds=0)
    meter.begin_window("local-train")
    stats = train_data(
        lm,
        data,
        epochs=cfg.local_epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        seed=cfg.seed * 1_000_003 + rnd * 1009 + part,
        max_steps=cfg.local_steps,
        mu=float(msg.content["config"].get("proximal-mu", 0.0)),
    )
    m = meter.end_window("local-train")

    t0 = time.perf_counter()
    folder, residual, residual_round = None, None, 0
    if cfg.compression == "topk":
        folder = residual_store(msg.content["config"], context)
        residual, residual_round = _residual_before(context, folder, part, rnd)
    sent, residual = encode_update(
        get_arrays(lm.model), base, cfg.compression, fraction=cfg.topk_fraction, residual=residual
    )
    if residual is not None:
        if folder is not None:  # on disk first: a failed write leaves the context as it was
            save_residual(folder, part, rnd, residual)
            prune_residuals(folder, kept_round=rnd - 1, partition=part)
        context.state["residual"] = to_record(residual)
        context.state["residual-meta"] = ConfigRecord({"round": rnd})
    _corrupt(sent, faults)
    encode_s = time.perf_counter() - t0

    report = {
        "partition-id": part,
        "energy-source": m.source,
        "train-s": m.time_s,
        "cpu-s": m.cpu_time_s or 0.0,
        "encode-s": encode_s,
        "steps": stats["steps"],
        "samples-seen": stats["samples"],
        "loss": stats["loss"] if stats["loss"] is not None else float("nan"),
        "wall-s": time.perf_counter() - wall0,
        "pid": os.getpid(),
    }
    if cfg.compression == "topk":
        report["residual-round"] = residual_round
        report["residual-stored"] = folder is not None
    if m.energy_j is not None:
        report["energy-j"] = m.energy_j
    content = RecordDict(
        {
            "arrays": to_record(sent),
            "metrics": MetricRecord({"num-examples": len(data), "unit-weight": 1}),
            "report": ConfigRecord(report),
        }
    )
    return Message(content, reply_to=msg)


def _corrupt(sent: dict, faults: set[str]) -> None:
    """Injected corrupt updates: NaN in the first float tensor, or a wrong shape."""
    import numpy as np

    if "nan" in faults:
        key = next(k for k, v in sent.items() if v.dtype.kind == "f")
        bad = sent[key].copy()
        bad.reshape(-1)[0] = np.nan
        sent[key] = bad
    if "shape" in faults:
        key = next(iter(sent))
        sent[key] = np.concatenate([sent[key].reshape(-1), sent[key].reshape(-1)[:1]])
