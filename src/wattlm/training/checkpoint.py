"""Resumable checkpoints: model, optimizer, schedule, scaler, RNG and position in the data.

A checkpoint is a folder ``RUN/checkpoints/step-00000040/`` holding ``state.pt`` (written
atomically by process 0) and one ``rng-rank{r}.pt`` per process. Everything is plain tensors
and JSON-like values, so it loads with ``torch.load(..., weights_only=True)``: a checkpoint
cannot run code. Only the newest checkpoint is kept.

Each checkpoint records a *compatibility* dict (recipe, parameter names and shapes, data,
batch geometry, optimizer, seed, ...); resuming a run whose dict differs fails, naming
what differs, before any training.

Example:
    >>> check_compatible({"batch_size": 8, "seed": 0}, {"batch_size": 8, "seed": 0}, "ckpt")
    >>> check_compatible({"batch_size": 8}, {"batch_size": 4}, "ckpt")
    Traceback (most recent call last):
    wattlm.errors.WattlmError: cannot resume from ckpt: it was saved by a different run (batch_size: 8 in the checkpoint, 4 now) (resume with the same options, or start a new --out)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from wattlm._files import atomic_path
from wattlm.errors import WattlmError

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.pt"
FORMAT_VERSION = 1


def _folder(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"step-{step:08d}"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of ``run_dir`` (``None`` if there is none)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: p.name) if done else None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], *, rank: int) -> Path:
    """Write this process's part of the checkpoint for ``step``.

    Process 0 writes ``state`` (model, optimizer, schedule, scaler, position, compat) and
    its RNG; other processes only their RNG, after process 0 (callers put a barrier
    between the two calls, see :mod:`wattlm.training.loop`).
    """
    folder = _folder(run_dir, step)
    if rank == 0:
        with atomic_path(folder, directory=True) as tmp:
            torch.save({"format_version": FORMAT_VERSION, **state}, tmp / STATE_FILE)
            torch.save(rng_state(), tmp / "rng-rank0.pt")
    else:
        with atomic_path(folder / f"rng-rank{rank}.pt") as tmp:
            torch.save(rng_state(), tmp)
    return folder


def prune_checkpoints(run_dir: Path, keep: Path | None) -> None:
    """Remove every checkpoint of ``run_dir`` except ``keep`` (all when ``None``)."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return
    for p in root.iterdir():
        if keep is not None and p.resolve() == keep.resolve():
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if keep is None:
        shutil.rmtree(root, ignore_errors=True)


def load_checkpoint(folder: Path, *, rank: int, device: str = "cpu") -> dict[str, Any]:
    """Read ``state.pt`` and this process's RNG (tensors only, ``weights_only=True``)."""
    try:
        state = torch.load(folder / STATE_FILE, map_location=device, weights_only=True)
        rng_file = folder / f"rng-rank{rank}.pt"
        state["rng"] = torch.load(rng_file, weights_only=True) if rng_file.is_file() else None
    except Exception as err:  # corrupt file, or one holding pickled code
        raise WattlmError(f"cannot read checkpoint {folder}: {err}".splitlines()[0]) from None
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise WattlmError(f"checkpoint {folder} was written by a newer wattlm", hint="upgrade")
    if state["rng"] is None:
        raise WattlmError(
            f"checkpoint {folder} has no RNG state for process {rank}",
            hint="resume with the same number of processes it was saved with",
        )
    return state


def check_compatible(saved: dict[str, Any], current: dict[str, Any], where: str) -> None:
    """Raise a clear error naming each key whose value differs."""
    keys = sorted(set(saved) | set(current))
    diffs = [
        f"{k}: {_short(saved.get(k))} in the checkpoint, {_short(current.get(k))} now"
        for k in keys
        if saved.get(k) != current.get(k)
    ]
    if diffs:
        raise WattlmError(
            f"cannot resume from {where}: it was saved by a different run ({'; '.join(diffs[:4])})",
            hint="resume with the same options, or start a new --out",
        )


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def parameter_signature(module: torch.nn.Module) -> str:
    """SHA-256 (16 hex) of every state-dict name, shape and dtype: the shape of a model."""
    digest = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype};".encode())
    return digest.hexdigest()[:16]
