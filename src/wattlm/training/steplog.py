"""Per-step records: the one throughput formula, ``log.jsonl`` and the progress line.

Every recipe logs through here, so samples/s, tokens/s and energy per step are computed
the same way everywhere (torchtune's recipes drifted apart on exactly this).

Example:
    >>> throughput(samples=64, tokens=4096, time_s=2.0)
    {'samples_per_s': 32.0, 'tokens_per_s': 2048.0}
    >>> throughput(samples=1, tokens=1, time_s=0.0)
    {'samples_per_s': None, 'tokens_per_s': None}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

LOG_FILE = "log.jsonl"


def throughput(*, samples: int, tokens: int, time_s: float) -> dict[str, float | None]:
    """Samples and tokens per second of wall-clock time (``None`` for a zero-length window).

    Counts are global (all processes); ``tokens`` are real tokens, padding excluded.
    """
    if time_s <= 0:
        return {"samples_per_s": None, "tokens_per_s": None}
    return {"samples_per_s": samples / time_s, "tokens_per_s": tokens / time_s}


class StepLog:
    """Appends one JSON object per optimizer step to ``log.jsonl`` (process 0 only).

    On resume, records after the checkpoint's step are dropped first, so the log reads as
    one uninterrupted run.
    """

    def __init__(self, path: Path | None, *, resume_step: int | None = None) -> None:
        self.path = path
        self._fh: IO[str] | None = None
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and path.is_file():
            kept = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        elif resume_step is None:
            path.write_text("", encoding="utf-8")
        self._fh = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _si(value: float | None, unit: str) -> str:
    if value is None:
        return f"- {unit}"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def format_step(record: dict[str, Any], total_steps: int) -> str:
    """One human line for the terminal, e.g. ``step 20/100 loss 0.412 lr 4.0e-05 ...``."""
    rate = record.get("tokens_per_s")
    energy = record.get("energy_j")
    return (
        f"step {record['step']}/{total_steps}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  "
        f"{_si(record.get('samples_per_s'), 'samples/s')}  {_si(rate, 'tok/s')}  "
        f"peak {_si(record.get('peak_memory_bytes'), 'B')}  "
        f"{_si(energy, 'J')} ({record.get('energy_source')})"
    )
