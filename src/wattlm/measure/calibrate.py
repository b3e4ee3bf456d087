"""Fit ``estimate:cpu-v2``'s two core powers against a CPU energy sensor.

A short fixed workload (torch matmuls) runs at several thread counts and loads (a load is
the busy share of every 100 ms period; ``load=0`` is idling), each window read by the
sensor. The sensor counts whole packages, so its joules are modelled as::

    energy_j = time_s * machine_cores * static_core_w + cpu_time_s * dynamic_core_w

and the two powers are the least-squares fit over every window. The error of an estimate
against the sensor is reported per workload as the mean absolute percentage error (MAPE),
for the fitted powers and for the bundled table's.

Example:
    >>> s = [CalibrationSample("idle", 1, 0.0, 10.0, 0.0, 40.0),
    ...      CalibrationSample("busy", 2, 1.0, 10.0, 20.0, 140.0)]
    >>> fit_powers(s, machine_cores=2)  # 10 s x 2 cores x 2 W; + 20 CPU-s x 5 W
    (2.0, 5.0)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from wattlm.errors import WattlmError
from wattlm.measure.base import EnergyMeter
from wattlm.measure.cpu_power import CpuIdentity
from wattlm.measure.estimate_v2 import PowerModel
from wattlm.measure.profile import CalibrationProfile, cpu_of

__all__ = [
    "CalibrationSample",
    "Workload",
    "calibrate",
    "default_plan",
    "fit_powers",
    "mape_by_workload",
    "matmul_workload",
]

#: runs the workload: (threads, load in [0, 1], seconds) -> None
Workload = Callable[[int, float, float], None]
PERIOD_S = 0.1


@dataclass(frozen=True)
class CalibrationSample:
    """One measured window: the workload, its wall and CPU time, the sensor's joules."""

    workload: str
    threads: int
    load: float
    time_s: float
    cpu_time_s: float
    energy_j: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_plan(cores: int) -> list[tuple[int, float]]:
    """(threads, load) pairs: idle, then 1 and every core at half and full load.

    Example:
        >>> default_plan(4)
        [(1, 0.0), (1, 0.5), (1, 1.0), (2, 1.0), (4, 0.5), (4, 1.0)]
    """
    plan = [(1, 0.0), (1, 0.5), (1, 1.0)]
    if cores >= 4:
        plan.append((cores // 2, 1.0))
    if cores >= 2:
        plan += [(cores, 0.5), (cores, 1.0)]
    return plan


def workload_name(threads: int, load: float) -> str:
    return "idle" if load == 0 else f"{threads} thread{'s' * (threads > 1)} at {load:.0%}"


def matmul_workload(threads: int, load: float, seconds: float) -> None:
    """torch float32 matmuls on ``threads`` threads, busy ``load`` of every 100 ms."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(256, 256)
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        busy_until = start + PERIOD_S * load
        while time.perf_counter() < busy_until:
            a = torch.tanh(a @ a)
        rest = start + PERIOD_S - time.perf_counter()
        if rest > 0:
            time.sleep(min(rest, max(end - time.perf_counter(), 0.0)))


def fit_powers(samples: Sequence[CalibrationSample], machine_cores: int) -> tuple[float, float]:
    """Least-squares ``(static_core_w, dynamic_core_w)`` of ``E = t·N·s + cpu·d``.

    Needs windows that differ in busy share (an idle one and a busy one suffice).
    """
    xs = [(x.time_s * machine_cores, x.cpu_time_s, x.energy_j) for x in samples]
    saa = sum(a * a for a, _, _ in xs)
    sbb = sum(b * b for _, b, _ in xs)
    sab = sum(a * b for a, b, _ in xs)
    sae = sum(a * e for a, _, e in xs)
    sbe = sum(b * e for _, b, e in xs)
    det = saa * sbb - sab * sab
    if len(xs) < 2 or det <= 1e-12 * max(saa * sbb, 1e-300):
        raise WattlmError(
            "calibration windows cannot separate static from dynamic power",
            hint="include an idle workload and a busy one",
        )
    static = (sae * sbb - sbe * sab) / det
    dynamic = (sbe * saa - sae * sab) / det
    return round(static, 12), round(dynamic, 12)


def mape_by_workload(
    samples: Sequence[CalibrationSample], static_w: float, dynamic_w: float, machine_cores: int
) -> dict[str, float]:
    """Mean absolute percentage error of ``t·N·static + cpu·dynamic`` per workload.

    Example:
        >>> s = [CalibrationSample("busy", 1, 1.0, 1.0, 1.0, 10.0)]
        >>> mape_by_workload(s, 2.0, 9.0, machine_cores=1)  # predicts 11 J for 10 J
        {'busy': 10.0}
    """
    errors: dict[str, list[float]] = {}
    for x in samples:
        predicted = x.time_s * machine_cores * static_w + x.cpu_time_s * dynamic_w
        if x.energy_j > 0:
            errors.setdefault(x.workload, []).append(abs(predicted - x.energy_j) / x.energy_j)
    return {k: round(100.0 * sum(v) / len(v), 6) for k, v in errors.items()}


def calibrate(
    sensor: EnergyMeter,
    *,
    identity: CpuIdentity,
    machine_cores: int,
    table_model: PowerModel,
    plan: Sequence[tuple[int, float]] | None = None,
    seconds: float = 2.0,
    repeats: int = 2,
    workload: Workload = matmul_workload,
    on_window: Callable[[CalibrationSample], None] | None = None,
) -> tuple[CalibrationProfile, dict[str, Any]]:
    """Run the plan under ``sensor`` and fit; returns the profile and a report.

    ``sensor`` must report the raw counters of the whole packages (no idle subtracted):
    its ``energy_j`` is used. The report holds the fitted and the table's powers and the
    MAPE per workload of each.
    """
    if seconds <= 0 or repeats < 1:
        raise WattlmError(f"need seconds > 0 and repeats >= 1, got {seconds} and {repeats}")
    plan = list(plan) if plan is not None else default_plan(machine_cores)
    samples: list[CalibrationSample] = []
    for _ in range(repeats):
        for threads, load in plan:
            sensor.begin_window("calibrate")
            workload(threads, load, seconds)
            m = sensor.end_window("calibrate")
            if m.energy_j is None or m.cpu_time_s is None:
                raise WattlmError(f"the sensor ({sensor.source}) gave no energy figure")
            sample = CalibrationSample(
                workload_name(threads, load), threads, load, m.time_s, m.cpu_time_s, m.energy_j
            )
            samples.append(sample)
            if on_window:
                on_window(sample)
    static_w, dynamic_w = fit_powers(samples, machine_cores)
    if static_w < 0 or dynamic_w < 0:
        raise WattlmError(
            f"the fit gave a negative power (static {static_w:.3g} W, dynamic "
            f"{dynamic_w:.3g} W per core): the windows were too noisy",
            hint="close other work on the machine and run with more --seconds",
        )
    fitted = mape_by_workload(samples, static_w, dynamic_w, machine_cores)
    table = mape_by_workload(
        samples, table_model.static_core_w, table_model.dynamic_core_w, machine_cores
    )
    profile = CalibrationProfile(
        cpu=cpu_of(identity),
        static_core_w=static_w,
        dynamic_core_w=dynamic_w,
        sensor=sensor.source,
        max_abs_pct_error=max(fitted.values(), default=0.0),
        mape_by_workload=fitted,
        created_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        samples=[s.to_dict() for s in samples],
    )
    report = {
        "machine_cores": machine_cores,
        "fitted": {"static_core_w": static_w, "dynamic_core_w": dynamic_w},
        "table": {
            "static_core_w": table_model.static_core_w,
            "dynamic_core_w": table_model.dynamic_core_w,
        },
        "mape_by_workload": {"fitted": fitted, "table": table},
    }
    return profile, report
