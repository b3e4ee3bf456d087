"""Pick an energy meter by name, falling back to the estimate instead of failing.

``auto`` takes the best source the machine offers: NVML when the work runs on a CUDA device
and NVML works, else RAPL when its counters are readable, else the CPU estimate
(``estimate:cpu-v2``, calibrated when a profile of this CPU is cached; ``estimate-v1`` picks
the older ``estimate:cpu-tdp-v1`` for comparison). A meter
asked for by name that cannot be used degrades to the estimate with a warning (logged and
kept in ``describe()["warning"]``), never a crash. Measured sources get their idle power
sampled here, before the run.

Example:
    >>> make_meter("estimate", profile=None).source
    'estimate:cpu-v2'
    >>> make_meter("estimate-v1").source
    'estimate:cpu-tdp-v1'
    >>> make_meter("null").source
    'unavailable'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from wattlm.errors import WattlmError
from wattlm.measure import METER_KINDS
from wattlm.measure.base import EnergyMeter
from wattlm.measure.estimate import CpuEstimateMeter
from wattlm.measure.estimate_v2 import CpuV2EstimateMeter
from wattlm.measure.memory import current_rss_bytes
from wattlm.measure.null import NullMeter
from wattlm.measure.nvml import NvmlMeter
from wattlm.measure.rapl import DEFAULT_ROOT, RaplMeter

__all__ = ["METER_KINDS", "make_meter"]

log = logging.getLogger("wattlm.measure")


def _cuda_devices(device: str) -> list[int] | None:
    """``"cuda"`` -> every visible GPU (``None``); ``"cuda:1"`` -> ``[1]``."""
    _, _, index = device.partition(":")
    if not index:
        return None
    if not index.isdigit():
        raise WattlmError(f"cannot read a GPU index from device {device!r}", hint="use cuda:0")
    return [int(index)]


def make_meter(
    kind: str = "auto",
    *,
    device: str = "cpu",
    sync: Callable[[], None] | None = None,
    cpu_clock: Callable[[], float] | None = None,
    idle_seconds: float = 1.0,
    rss_bytes: Callable[[], int] | None = None,
    rss_label: str | None = None,
    rapl_root: str | Path = DEFAULT_ROOT,
    profile: str | Path | None = "auto",
) -> EnergyMeter:
    """Build the meter called ``kind`` (one of :data:`METER_KINDS`) for work on ``device``.

    ``sync`` and ``cpu_clock`` go to the meter (see :class:`~.base.EnergyMeter`);
    ``rss_bytes``/``rss_label`` go to the estimate; ``idle_seconds=0`` skips idle sampling;
    ``profile`` is the v2 estimate's calibration profile (``"auto"``: the cached one if it
    matches this CPU; ``None``: none).
    """
    name = kind.strip().lower()
    if name not in METER_KINDS:
        raise WattlmError(f"unknown meter {kind!r}", hint=f"choose one of {', '.join(METER_KINDS)}")
    clock = cpu_clock or time.process_time
    is_cuda = device.startswith("cuda")
    gpu_ids = _cuda_devices(device) if is_cuda else None
    reasons: list[str] = []

    def estimate() -> EnergyMeter:
        extra = {"rss_label": rss_label} if rss_label else {}
        rss = rss_bytes or current_rss_bytes
        if name == "estimate-v1":
            return CpuEstimateMeter(sync, clock, rss_bytes=rss, **extra)
        return CpuV2EstimateMeter(sync, clock, rss_bytes=rss, profile=profile, **extra)

    if name == "null":
        return NullMeter(sync, clock)
    if name == "nvml" or (name == "auto" and is_cuda):
        gpu: NvmlMeter | None = None
        try:
            gpu = NvmlMeter(gpu_ids, sync, clock)
            gpu._read()  # the energy counter exists (Volta or newer)
        except Exception as err:
            if gpu is not None:
                gpu.close()
            reasons.append(f"NVML unavailable ({err})")
        else:
            return _with_idle(gpu, idle_seconds)
    if name in ("rapl", "auto"):
        try:
            return _with_idle(RaplMeter(sync, clock, root=rapl_root), idle_seconds)
        except WattlmError as err:
            reasons.append(f"RAPL unavailable ({err})")
    meter = estimate()
    if name not in ("estimate", "estimate-v1") and (name != "auto" or is_cuda):
        meter.warning = f"asked for {name} on {device}; using the estimate: " + "; ".join(reasons)
        if is_cuda:
            meter.warning += "; GPU energy is NOT counted, only the CPU estimate"
        log.warning(meter.warning)
    elif reasons:
        log.info("energy meter: %s; using the estimate", "; ".join(reasons))
    return meter


def _with_idle(meter: RaplMeter | NvmlMeter, idle_seconds: float) -> EnergyMeter:
    if idle_seconds > 0:
        try:
            meter.measure_idle(idle_seconds)
        except Exception as err:
            meter.warning = f"idle power could not be sampled ({err}); nothing subtracted"
            log.warning(meter.warning)
    return meter
