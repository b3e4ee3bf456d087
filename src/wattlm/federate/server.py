"""The Flower ``ServerApp``: rounds of sample → send → receive → check → aggregate → evaluate
→ checkpoint, with every round's bytes and joules written down.

The loop is written out (rather than ``strategy.start``) so that each reply can be decoded
from its compressed form, checked (a NaN or wrongly shaped update is rejected with its
reason, not averaged in), counted (bytes of the serialised records, both ways) and charged
(the client's own energy window), and so that a killed run resumes after its last
checkpointed round. Sampling and aggregation are the Flower strategy's own
(``configure_train`` / ``aggregate_train``).

Example:
    >>> from wattlm.federate.config import FederateConfig
    >>> app = make_server_app(FederateConfig(clients=2, rounds=1), "runs/fed")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattlm.errors import WattlmError
from wattlm.federate.checkpoint import RunState, load_state, save_state
from wattlm.federate.codec import check_update, decode_update, from_record, record_bytes, to_record
from wattlm.federate.config import FederateConfig, parse_fault
from wattlm.federate.residuals import drop_unfinished
from wattlm.federate.strategy import aggregate, make_strategy, restore_strategy, strategy_state

if TYPE_CHECKING:  # pragma: no cover
    from flwr.app import Context, Message
    from flwr.serverapp import Grid

log = logging.getLogger("wattlm.federate")
#: seconds to wait for every client to connect and say which partition it holds
CONNECT_S = 300.0


class AbortedRun(RuntimeError):
    """An injected abort (``abort@<round>:0``): the server stops as if killed."""


def make_server_app(
    config: FederateConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    residual_dir: Path | None = None,
):
    """A ``ServerApp`` running ``config`` and leaving its state in ``out_dir``.

    ``residual_dir``: a folder the clients can reach (a simulation on this machine) where
    they keep their top-k residuals for a resume (see :func:`run_rounds`).
    The returned app has a ``result`` dict attribute filled with the run's record (``rounds``,
    ``initial_quality``, ...) as it goes.
    """
    from flwr.serverapp import ServerApp

    server = ServerApp()
    server.result = {}  # type: ignore[attr-defined]

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        record = run_rounds(grid, config, Path(out_dir), resume=resume, residual_dir=residual_dir)
        server.result.update(record)  # type: ignore[attr-defined]

    return server


def wait_for_nodes(grid: Grid, count: int, timeout_s: float) -> list[int]:
    """Node ids once ``count`` nodes are connected (error after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while len(nodes := list(grid.get_node_ids())) < count:
        if time.monotonic() > deadline:
            raise WattlmError(
                f"only {len(nodes)} of {count} clients connected in {timeout_s:.0f} s",
                hint="start more SuperNodes or lower --clients",
            )
        time.sleep(0.05)
    return nodes


def node_partitions(grid: Grid, nodes: list[int], timeout_s: float) -> dict[int, int]:
    """Ask every node which partition it holds (a ``query`` message each)."""
    from flwr.app import Message, RecordDict

    msgs = [Message(RecordDict(), dst_node_id=n, message_type="query") for n in nodes]
    out = {}
    for reply in grid.send_and_receive(msgs, timeout=timeout_s):
        if not reply.has_error():
            out[reply.metadata.src_node_id] = int(reply.content["hello"]["partition-id"])
    return out


def run_rounds(
    grid: Grid,
    cfg: FederateConfig,
    out: Path,
    *,
    resume: bool,
    residual_dir: Path | None = None,
) -> dict[str, Any]:
    """The whole server side of a run; returns the record (also checkpointed each round).

    With ``topk`` every round's config carries the run's key (clients with a
    ``residual-dir`` in their node config keep their residuals in a folder of that name)
    and ``residual_dir`` when given: a folder on a file system the clients share with the
    server (the simulation's ``<out>/checkpoint/residuals``), pruned with each checkpoint.
    """
    import torch
    from flwr.app import ConfigRecord

    from wattlm.federate.local import get_arrays, held_out, load_global_model, set_arrays
    from wattlm.measure.factory import make_meter

    torch.set_num_threads(cfg.threads)
    meter = make_meter(cfg.meter, idle_seconds=0)
    lm = load_global_model(cfg)
    rows = held_out(cfg, lm.tokenizer)
    strategy = make_strategy(cfg)
    if resume:
        state = load_state(out)
        restore_strategy(strategy, state.strategy)
        record = state.record
        record.setdefault("resumed_after", []).append(state.round)
        if residual_dir is not None:
            drop_unfinished(residual_dir, after=state.round)
    else:
        record = {"initial_quality": _evaluate(lm, rows, cfg, meter), "rounds": []}
        state = RunState(round=0, arrays=get_arrays(lm.model), record=record)
        save_state(out, state)
    arrays = state.arrays
    connect_s = max(cfg.timeout_s, CONNECT_S)  # starting client processes is slow
    nodes = wait_for_nodes(grid, cfg.clients, connect_s)
    parts = node_partitions(grid, nodes, connect_s)
    record["nodes"] = {str(p): n for n, p in sorted(parts.items(), key=lambda x: x[1])}
    job = json.dumps(cfg.to_dict(), sort_keys=True)
    round_config: dict[str, str] = {"job": job}
    if cfg.compression == "topk":
        round_config["run-key"] = state.run_key
        if residual_dir is not None:
            round_config["residual-dir"] = str(Path(residual_dir).resolve())
    aborts = {parse_fault(f)[1] for f in cfg.faults if f.startswith("abort@")}

    for rnd in range(state.round + 1, cfg.rounds + 1):
        if rnd in aborts and not resume:
            raise AbortedRun(f"injected abort before round {rnd}")
        t_round = time.perf_counter()
        random.seed(cfg.seed * 7919 + rnd)  # Flower samples nodes with `random`
        sent = list(
            strategy.configure_train(rnd, to_record(arrays), ConfigRecord(round_config), grid)
        )
        down = {m.metadata.dst_node_id: record_bytes(m.content) for m in sent}
        replies = {
            r.metadata.src_node_id: r for r in grid.send_and_receive(sent, timeout=cfg.timeout_s)
        }
        clients, updates = [], []
        meter.begin_window("aggregate")
        for msg in sent:
            node = msg.metadata.dst_node_id
            entry = _client_entry(node, parts.get(node), down[node], replies.get(node))
            if entry["status"] == "ok":
                try:
                    weights = decode_update(
                        from_record(replies[node].content["arrays"]), arrays, cfg.compression
                    )
                    reason = check_update(weights, arrays)
                except ValueError as err:
                    reason = str(err)
                if reason is None:
                    updates.append((weights, entry["rows"]))
                else:
                    entry.update(status="rejected", reason=reason)
                    log.warning(
                        "round %d: update of client %s rejected: %s",
                        rnd,
                        entry["partition"],
                        reason,
                    )
            clients.append(entry)
        new = aggregate(strategy, rnd, updates)
        agg = meter.end_window("aggregate")
        if new is not None:
            arrays = new
        set_arrays(lm.model, arrays)
        quality = _evaluate(lm, rows, cfg, meter)
        clients.sort(key=lambda c: (c["partition"] is None, c["partition"] or 0))
        record["rounds"].append(
            {
                "round": rnd,
                "clients": clients,
                "aggregated": len(updates),
                "failed": [c["partition"] for c in clients if c["status"] != "ok"],
                "server": {
                    "aggregate_s": agg.time_s,
                    "aggregate_energy_j": agg.energy_j,
                    "energy_source": agg.source,
                },
                "quality": quality,
                "wall_s": time.perf_counter() - t_round,
            }
        )
        save_state(out, RunState(rnd, arrays, record, strategy_state(strategy), state.run_key))
        log.info(
            "round %d: quality %.4f, %d/%d updates", rnd, quality["value"], len(updates), len(sent)
        )
    record["final_arrays_round"] = cfg.rounds
    return record


def _evaluate(lm, rows, cfg: FederateConfig, meter) -> dict[str, Any]:
    from wattlm.federate.local import evaluate

    meter.begin_window("evaluate")
    quality = evaluate(lm, rows, cfg.seq_len)
    m = meter.end_window("evaluate")
    return {**quality, "eval_s": m.time_s, "eval_energy_j": m.energy_j}


def _client_entry(node: int, part: int | None, down: int, reply: Message | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "partition": part,
        "node_id": str(node),
        "status": "ok",
        "reason": None,
        "downlink_bytes": down,
        "uplink_bytes": 0,
    }
    if reply is None:
        entry.update(status="failed", reason="no reply before the round timeout")
        return entry
    if reply.has_error():
        entry.update(status="failed", reason=_short(reply.error.reason))
        return entry
    entry["uplink_bytes"] = record_bytes(reply.content)
    rep = reply.content["report"]
    entry.update(
        partition=int(rep["partition-id"]),
        rows=int(reply.content["metrics"]["num-examples"]),
        samples_seen=int(rep["samples-seen"]),
        steps=int(rep["steps"]),
        loss=float(rep["loss"]),
        energy_j=float(rep["energy-j"]) if "energy-j" in rep else None,
        energy_source=str(rep["energy-source"]),
        train_s=float(rep["train-s"]),
        cpu_s=float(rep["cpu-s"]),
        encode_s=float(rep["encode-s"]),
        wall_s=float(rep["wall-s"]),
    )
    if "residual-round" in rep:  # top-k: where the client's error feedback came from
        entry["residual_round"] = int(rep["residual-round"])
        entry["residual_stored"] = bool(rep["residual-stored"])
    return entry


def _short(reason: str) -> str:
    """The last meaningful line of a client's error (Ray wraps it in a traceback)."""
    lines = [ln.strip() for ln in str(reason).splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Message:" in line:
            return line.split("Message:", 1)[1].strip().rstrip("'>")
    return lines[-1][:300] if lines else "unknown error"
