"""Run a backend's measurement in a fresh process.

Why: torch and the llama.cpp wheel share one OpenMP runtime (torch's ``libgomp``). Once
torch has run in a process, llama.cpp's decode in that same process is ~35% slower on this
2-core machine (110 → 72 tokens/s measured, same CPU seconds per token). Measuring the peer
in the torch process would understate it, so each llama.cpp run gets its own process
(spawned, not forked, so no torch state is inherited) with its own energy meter; the CPU
time it counts is that process's own.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from wattlm.bench.phases import PhaseSamples, run_phases


def _child(
    backend: str,
    backend_kwargs: dict[str, Any],
    prompts: list[list[int]],
    new_tokens: int,
    warmup: int,
    repeats: int,
    meter_kind: str,
    device: str,
) -> tuple[PhaseSamples, dict[str, Any], dict[str, Any]]:
    from wattlm.bench.backends import backend_class
    from wattlm.measure.factory import make_meter

    meter = make_meter(meter_kind, device=device)
    with backend_class(backend)(**backend_kwargs) as runner:
        samples = run_phases(
            runner, prompts, new_tokens=new_tokens, warmup=warmup, repeats=repeats, meter=meter
        )
        return samples, runner.describe(), meter.describe()


def run_phases_in_child(
    backend: str,
    backend_kwargs: dict[str, Any],
    prompts: list[list[int]],
    *,
    new_tokens: int,
    warmup: int,
    repeats: int,
    meter_kind: str,
    device: str,
) -> tuple[PhaseSamples, dict[str, Any], dict[str, Any]]:
    """:func:`run_phases` in a spawned process; returns (samples, backend, meter) details.

    The backend is built in the child from ``backend_kwargs`` (plain, picklable values).
    Errors raised in the child (e.g. :class:`~wattlm.errors.WattlmError`) re-raise here.
    """
    kwargs = {k: str(v) if isinstance(v, Path) else v for k, v in backend_kwargs.items()}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        future = pool.submit(
            _child, backend, kwargs, prompts, new_tokens, warmup, repeats, meter_kind, device
        )
        return future.result()
