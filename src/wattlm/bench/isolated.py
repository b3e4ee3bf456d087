"""Run a backend's measurement in a fresh process.

Why: torch and the llama.cpp wheel share one OpenMP runtime (torch's ``libgomp``). Once
torch has run in a process, llama.cpp's decode in that same process is ~35% slower on this
2-core machine (110 → 72 tokens/s measured, same CPU seconds per token). Measuring the peer
in the torch process would understate it, so each llama.cpp run gets its own process
(spawned, not forked, so no torch state is inherited) with its own energy meter; the CPU
time it counts is that process's own.

A stop rule (:class:`~wattlm.bench.phases.StopRule`, plain data) set around the call with
:func:`~wattlm.bench.phases.stopping` is read here, in the parent, and handed to the child
as a value; the samples that come back say whether it stopped early.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from wattlm.bench.phases import PhaseSamples, StopRule, current_rule, run_phases


def _child(
    backend: str,
    backend_kwargs: dict[str, Any],
    prompts: list[list[int]],
    new_tokens: int,
    warmup: int,
    repeats: int,
    meter_kind: str,
    device: str,
    stop: StopRule | None = None,
) -> tuple[PhaseSamples, dict[str, Any], dict[str, Any], dict[str, float]]:
    entered = time.time()  # wall clock: comparable with the parent's submit time
    from wattlm.bench.backends import backend_class
    from wattlm.measure.factory import make_meter

    meter = make_meter(meter_kind, device=device)
    started = time.perf_counter()
    with backend_class(backend)(**backend_kwargs) as runner:
        loaded = time.perf_counter()
        samples = run_phases(
            runner,
            prompts,
            new_tokens=new_tokens,
            warmup=warmup,
            repeats=repeats,
            meter=meter,
            stop=stop,
        )
        timings = {
            "entered": entered,
            "model_load_s": loaded - started,
            "bench_s": time.perf_counter() - loaded,
        }
        return samples, runner.describe(), meter.describe(), timings


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
    timings: dict[str, float] | None = None,
    stop: StopRule | None = None,
) -> tuple[PhaseSamples, dict[str, Any], dict[str, Any]]:
    """:func:`run_phases` in a spawned process; returns (samples, backend, meter) details.

    The backend is built in the child from ``backend_kwargs`` (plain, picklable values).
    Errors raised in the child (e.g. :class:`~wattlm.errors.WattlmError`) re-raise here.
    ``timings``, when given, is increased by the seconds spent starting the process
    (``process_start_s``: spawn until the child runs, its imports included), building the
    backend (``model_load_s``) and measuring (``bench_s``). ``stop`` (else the rule of an
    enclosing :func:`~wattlm.bench.phases.stopping` block) travels to the child as a value.
    """
    stop = stop if stop is not None else current_rule()
    kwargs = {k: str(v) if isinstance(v, Path) else v for k, v in backend_kwargs.items()}
    ctx = multiprocessing.get_context("spawn")
    submitted = time.time()
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        future = pool.submit(
            _child, backend, kwargs, prompts, new_tokens, warmup, repeats, meter_kind, device, stop
        )
        samples, details, meter, child = future.result()
    if timings is not None:
        add_timing(timings, "process_start_s", max(0.0, child["entered"] - submitted))
        add_timing(timings, "model_load_s", child["model_load_s"])
        add_timing(timings, "bench_s", child["bench_s"])
    return samples, details, meter


def add_timing(timings: dict[str, float], key: str, seconds: float) -> None:
    """Add ``seconds`` to ``timings[key]`` (a per-stage breakdown).

    Example:
        >>> t = {}; add_timing(t, "bench_s", 1.5); add_timing(t, "bench_s", 0.5); t
        {'bench_s': 2.0}
    """
    timings[key] = timings.get(key, 0.0) + seconds
