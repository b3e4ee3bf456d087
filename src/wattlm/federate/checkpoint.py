"""The per-round checkpoint: global weights, strategy state and every finished round's record.

Written atomically after each round to ``<out>/checkpoint/state.npz`` + ``state.json``; a
killed run resumes after the last round written there and never repeats it. Top-k
residuals of simulated clients live beside it in ``<out>/checkpoint/residuals``
(:mod:`wattlm.federate.residuals`); each save prunes the ones no resume can need.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> save_state(out, RunState(round=2, arrays={"w": np.ones(2, np.float32)}, record={"a": 1}))
    >>> s = load_state(out)
    >>> (s.round, s.arrays["w"].tolist(), s.record)
    (2, [1.0, 1.0], {'a': 1})
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wattlm._files import atomic_path, write_json
from wattlm.errors import WattlmError
from wattlm.federate.residuals import prune_residuals

CHECKPOINT = "checkpoint"
RESIDUALS = "residuals"


@dataclass
class RunState:
    """Where a run stands: the last finished ``round``, the global ``arrays``, the strategy's
    numpy state, the record so far (initial quality, rounds) and the ``run_key`` naming
    this run's residual folders on the clients (kept across resumes)."""

    round: int
    arrays: dict[str, np.ndarray]
    record: dict[str, Any]
    strategy: dict[str, Any] = field(default_factory=dict)
    run_key: str = field(default_factory=lambda: uuid.uuid4().hex)


def residual_folder(out: Path) -> Path:
    """Where simulated clients (sharing this machine) keep their top-k residuals.

    Example:
        >>> residual_folder(Path("runs/fed")).as_posix()
        'runs/fed/checkpoint/residuals'
    """
    return Path(out) / CHECKPOINT / RESIDUALS


def save_state(out: Path, state: RunState) -> None:
    """Write ``state`` (weights first, then the JSON that points at them)."""
    folder = Path(out) / CHECKPOINT
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **state.arrays)
    with atomic_path(folder / f"arrays-{state.round}.npz") as tmp:
        tmp.write_bytes(buf.getvalue())
    flat, layout = _flatten(state.strategy)
    buf = io.BytesIO()
    np.savez(buf, **flat)
    with atomic_path(folder / f"strategy-{state.round}.npz") as tmp:
        tmp.write_bytes(buf.getvalue())
    meta = {
        "round": state.round,
        "record": state.record,
        "strategy_layout": layout,
        "run_key": state.run_key,
    }
    write_json(folder / "state.json", meta)
    for old in [*folder.glob("arrays-*.npz"), *folder.glob("strategy-*.*")]:
        if old.stem.rsplit("-", 1)[1] != str(state.round):
            old.unlink(missing_ok=True)
    prune_residuals(residual_folder(out), kept_round=state.round)


def load_state(out: Path) -> RunState:
    """The checkpoint in ``out``; a clear error when there is none."""
    folder = Path(out) / CHECKPOINT
    if not (folder / "state.json").is_file():
        raise WattlmError(
            f"no federated checkpoint in {out}", hint="run without --resume to start a new run"
        )
    meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    rnd = int(meta["round"])
    if "strategy_layout" not in meta:
        raise WattlmError(
            f"the checkpoint in {out} was written by an older wattlm (a pickled strategy state, "
            "which is never read back)",
            hint="start the run again without --resume",
        )
    with np.load(folder / f"arrays-{rnd}.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    with np.load(folder / f"strategy-{rnd}.npz", allow_pickle=False) as npz:
        flat = {k: npz[k] for k in npz.files}
    strategy = _unflatten(flat, meta["strategy_layout"])
    state = RunState(round=rnd, arrays=arrays, record=meta["record"], strategy=strategy)
    if meta.get("run_key"):  # a checkpoint of an older wattlm has none: a new key then
        state.run_key = str(meta["run_key"])
    return state


def _flatten(state: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays of a strategy state (each value an array, a list of arrays, or a dict of
    them, possibly under ``{"__record__": ...}``) and the JSON layout to rebuild it: never
    pickle, so reading a checkpoint cannot run code.

    Example:
        >>> flat, layout = _flatten({"m": [np.ones(1)], "a": {"__record__": {"w": np.zeros(2)}}})
        >>> sorted(flat), layout["m"]
        (['a/w', 'm/0'], {'kind': 'list', 'n': 1})
        >>> _unflatten(flat, layout)["a"]["__record__"]["w"].tolist()
        [0.0, 0.0]
    """
    flat: dict[str, np.ndarray] = {}
    layout: dict[str, Any] = {}
    for name, value in state.items():
        record = isinstance(value, dict) and "__record__" in value
        inner = value["__record__"] if record else value
        if isinstance(inner, dict):
            keys = list(inner)
            flat.update({f"{name}/{k}": np.asarray(inner[k]) for k in keys})
            layout[name] = {"kind": "record" if record else "dict", "keys": keys}
        elif isinstance(inner, (list, tuple)):
            flat.update({f"{name}/{i}": np.asarray(a) for i, a in enumerate(inner)})
            layout[name] = {"kind": "list", "n": len(inner)}
        else:
            flat[name] = np.asarray(inner)
            layout[name] = {"kind": "array"}
    return flat, layout


def _unflatten(flat: dict[str, np.ndarray], layout: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, how in layout.items():
        if how["kind"] in ("record", "dict"):
            value: Any = {k: flat[f"{name}/{k}"] for k in how["keys"]}
            out[name] = {"__record__": value} if how["kind"] == "record" else value
        elif how["kind"] == "list":
            out[name] = [flat[f"{name}/{i}"] for i in range(how["n"])]
        else:
            out[name] = flat[name]
    return out
