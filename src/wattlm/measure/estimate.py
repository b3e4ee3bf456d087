"""The first estimate, kept for comparison: ``estimate:cpu-tdp-v1`` (``--meter estimate-v1``).

The default estimate is ``estimate:cpu-v2`` (:mod:`.estimate_v2`). Model (an *active-power*
model: idle power is neither measured nor subtracted, so ``total`` and ``marginal`` are the
same figure)::

    energy_j = cpu_time_s * per_core_w  +  dram_w_per_gb * rss_gib * time_s

- ``cpu_time_s``: CPU seconds of the work (user + system, all threads) from ``cpu_clock``;
- ``per_core_w = tdp_w / package_cores`` of the detected CPU (see :mod:`.cpu_power`);
- ``dram_w_per_gb = 0.375`` (3 W per 8 GB, CodeCarbon's historical RAM figure);
- ``rss_gib``: resident memory of the work at the window's end (GiB), ``time_s``: wall time.

Example:
    >>> from wattlm.measure.cpu_power import CpuPower
    >>> cpu = CpuPower(per_core_w=5.0, match="model-name", source="test")
    >>> clock = iter([0.0, 2.0]).__next__  # 2 CPU seconds in the window
    >>> meter = CpuEstimateMeter(cpu_clock=clock, cpu_power=cpu, rss_bytes=lambda: 0)
    >>> meter.begin_window("w")
    >>> meter.end_window("w").energy_j
    10.0
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from wattlm.measure.base import EnergyMeter, WindowEnergy
from wattlm.measure.cpu_power import (
    CpuIdentity,
    CpuPower,
    describe_cpu,
    load_table,
    lookup_cpu_power,
    read_cpu_identity,
)
from wattlm.measure.memory import current_rss_bytes

__all__ = ["ESTIMATE_SOURCE", "FORMULA", "CpuEstimateMeter"]

ESTIMATE_SOURCE = "estimate:cpu-tdp-v1"
FORMULA = "energy_j = cpu_time_s * per_core_w + dram_w_per_gb * (rss_bytes / 2**30) * time_s"
GIB = 2**30


class CpuEstimateMeter(EnergyMeter):
    """Energy from CPU time and a documented per-core power model; no sensor needed.

    ``cpu_power`` and ``dram_w_per_gb`` default to the bundled table's figures for the CPU
    in ``identity`` (read from ``/proc/cpuinfo`` when not given). ``rss_bytes`` returns the
    work's resident memory (this process by default); ``rss_label`` says what it counts.
    """

    source = ESTIMATE_SOURCE
    methods = {  # noqa: RUF012
        "total": "estimate v1: active-power model, idle not modelled (same as marginal)",
        "marginal": "estimate v1: CPU time x TDP per core + DRAM",
    }

    def __init__(
        self,
        sync: Callable[[], None] | None = None,
        cpu_clock: Callable[[], float] = time.process_time,
        *,
        wall_clock: Callable[[], float] = time.perf_counter,
        identity: CpuIdentity | None = None,
        cpu_power: CpuPower | None = None,
        dram_w_per_gb: float | None = None,
        rss_bytes: Callable[[], int] = current_rss_bytes,
        rss_label: str = "resident set size of this process at window end",
    ) -> None:
        super().__init__(sync, cpu_clock, wall_clock=wall_clock)
        self.identity = identity if identity is not None else read_cpu_identity()
        self.cpu_power = cpu_power if cpu_power is not None else lookup_cpu_power(self.identity)
        dram = load_table()["dram_w_per_gb"]
        self.dram_w_per_gb = float(dram["value"] if dram_w_per_gb is None else dram_w_per_gb)
        self._dram_source = dram["source"] if dram_w_per_gb is None else "given by caller"
        self._rss_bytes = rss_bytes
        self._rss_label = rss_label

    def _read(self) -> None:
        return None

    def _energy_between(
        self, start: Any, end: Any, time_s: float, cpu_time_s: float
    ) -> WindowEnergy:
        rss = int(self._rss_bytes())
        cpu_j = max(cpu_time_s, 0.0) * self.cpu_power.per_core_w
        memory_j = self.dram_w_per_gb * (rss / GIB) * time_s
        details = {
            "cpu_energy_j": cpu_j,
            "memory_energy_j": memory_j,
            "rss_bytes": rss,
            "per_core_w": self.cpu_power.per_core_w,
            "dram_w_per_gb": self.dram_w_per_gb,
        }
        return WindowEnergy(cpu_j + memory_j, cpu_j + memory_j, details)

    def describe(self) -> dict[str, Any]:
        p, ident = self.cpu_power, self.identity
        out = super().describe()
        out.update(
            model="cpu-tdp-v1",
            formula=FORMULA,
            **describe_cpu(ident, p),
            dram_w_per_gb=self.dram_w_per_gb,
            dram_source=self._dram_source,
            rss=self._rss_label,
            idle_subtracted=False,
            note=self._note(),
        )
        return out

    def _note(self) -> str:
        p, ident = self.cpu_power, self.identity
        base = (
            "estimate, not a measurement: active-power model (idle power not subtracted; "
            "no turbo, frequency or utilisation modelling); a VM's vCPUs are charged a "
            "per-core share of the whole package's TDP."
        )
        if p.match == "family-model":
            return (
                f"{base} Model name {ident.model_name!r} names no SKU: cpu family "
                f"{ident.family} model {ident.model} ({p.codename}) is represented by {p.sku}."
            )
        if p.match == "generic-default":
            return (
                f"{base} CPU {ident.model_name!r} is not in the table: generic default of "
                f"{p.per_core_w} W per core."
            )
        return base
