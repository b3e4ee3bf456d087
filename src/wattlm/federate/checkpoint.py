"""The per-round checkpoint: global weights, strategy state and every finished round's record.

Written atomically after each round to ``<out>/checkpoint/state.npz`` + ``state.json``; a
killed run resumes after the last round written there and never repeats it.

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
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wattlm._files import atomic_path, write_json
from wattlm.errors import WattlmError

CHECKPOINT = "checkpoint"


@dataclass
class RunState:
    """Where a run stands: the last finished ``round``, the global ``arrays``, the strategy's
    numpy state and the record so far (initial quality, rounds)."""

    round: int
    arrays: dict[str, np.ndarray]
    record: dict[str, Any]
    strategy: dict[str, Any] = field(default_factory=dict)


def save_state(out: Path, state: RunState) -> None:
    """Write ``state`` (weights first, then the JSON that points at them)."""
    folder = Path(out) / CHECKPOINT
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **state.arrays)
    with atomic_path(folder / f"arrays-{state.round}.npz") as tmp:
        tmp.write_bytes(buf.getvalue())
    with atomic_path(folder / f"strategy-{state.round}.pkl") as tmp:
        tmp.write_bytes(pickle.dumps(state.strategy))
    write_json(folder / "state.json", {"round": state.round, "record": state.record})
    for old in [*folder.glob("arrays-*.npz"), *folder.glob("strategy-*.pkl")]:
        if old.stem.rsplit("-", 1)[1] != str(state.round):
            old.unlink(missing_ok=True)


def load_state(out: Path) -> RunState:
    """The checkpoint in ``out``; a clear error when there is none."""
    folder = Path(out) / CHECKPOINT
    if not (folder / "state.json").is_file():
        raise WattlmError(
            f"no federated checkpoint in {out}", hint="run without --resume to start a new run"
        )
    meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    rnd = int(meta["round"])
    with np.load(folder / f"arrays-{rnd}.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    strategy = pickle.loads((folder / f"strategy-{rnd}.pkl").read_bytes())
    return RunState(round=rnd, arrays=arrays, record=meta["record"], strategy=strategy)
