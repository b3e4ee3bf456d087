"""RAPL energy counters through Linux powercap: source ``rapl``.

Reads ``energy_uj`` of every CPU package zone (``/sys/class/powercap/intel-rapl:N``, name
``package-N``) and of DRAM zones (name ``dram``) where the CPU exposes them. ``core`` and
``uncore`` sub-zones are parts of a package and are skipped, as is ``psys`` (it overlaps the
packages). AMD CPUs appear under the same ``intel-rapl`` names. Since Linux 5.10 the files
are readable by root only, so :meth:`RaplMeter.available` actually reads them.

A counter wraps at ``max_energy_range_uj``; a window that sees ``end < start`` adds the
range once (a window longer than one wrap period, minutes at full power, would undercount).
Idle power is sampled by :meth:`RaplMeter.measure_idle` before the run. The ``marginal``
view subtracts it, ``marginal_j = max(0, counted_j - idle_power_w * time_s)``; the ``total``
view keeps the idle power of the cores the work holds:
``total_j = marginal_j + idle_power_w * time_s * allocated_cores / machine_cores`` (the
counters cover whole packages; on a machine the work holds entirely this is ``counted_j``).
Without an idle sample both views are ``counted_j``.

Example:
    >>> RaplMeter.available("/nonexistent")
    False
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattlm.errors import WattlmError
from wattlm.measure.base import EnergyMeter, WindowEnergy, split_idle
from wattlm.measure.cpu_power import allocated_cores
from wattlm.measure.cpu_power import machine_cores as _machine_cores

__all__ = ["DEFAULT_ROOT", "RaplMeter", "RaplZone", "delta_uj", "find_zones"]

DEFAULT_ROOT = "/sys/class/powercap"


@dataclass(frozen=True)
class RaplZone:
    """One readable powercap zone: its folder, name and counter range."""

    path: Path
    name: str
    max_energy_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def delta_uj(start: int, end: int, max_energy_range_uj: int) -> int:
    """Microjoules between two readings of a counter that wraps at ``max_energy_range_uj``.

    Example:
        >>> delta_uj(900, 100, 1000)  # wrapped once
        200
    """
    return end - start if end >= start else end - start + max_energy_range_uj


def find_zones(root: str | Path = DEFAULT_ROOT) -> list[RaplZone]:
    """Package and DRAM zones under ``root`` whose counters can be read."""
    zones = []
    for folder in sorted(Path(root).glob("intel-rapl:*")):
        try:
            name = (folder / "name").read_text().strip()
            if not (name.startswith("package") or name == "dram"):
                continue
            zone = RaplZone(folder, name, int((folder / "max_energy_range_uj").read_text()))
            zone.read_uj()
        except (OSError, ValueError):
            continue
        zones.append(zone)
    return zones


class RaplMeter(EnergyMeter):
    """Energy of the CPU packages (and DRAM) from RAPL counters, in both views.

    ``alloc_cores`` (default: this process's affinity) and ``machine_cores`` (default: every
    logical CPU) set the share of the packages' idle power the ``total`` view keeps.
    """

    source = "rapl"
    methods = {  # noqa: RUF012
        "total": "package (+ DRAM) counters; idle power of the held share of cores kept",
        "marginal": "package (+ DRAM) counters minus idle power sampled before the run",
    }

    def __init__(
        self,
        sync: Callable[[], None] | None = None,
        cpu_clock: Callable[[], float] = time.process_time,
        *,
        wall_clock: Callable[[], float] = time.perf_counter,
        root: str | Path = DEFAULT_ROOT,
        alloc_cores: int | None = None,
        machine_cores: int | None = None,
    ) -> None:
        super().__init__(sync, cpu_clock, wall_clock=wall_clock)
        self.alloc_cores = alloc_cores or allocated_cores()
        self.machine_cores = max(machine_cores or _machine_cores(), self.alloc_cores)
        self.root = Path(root)
        self.zones = find_zones(root)
        if not self.zones:
            raise WattlmError(
                f"no readable RAPL counters under {root}",
                hint="they need root since Linux 5.10; use --meter estimate",
            )
        self._idle_w: float | None = None

    @classmethod
    def available(cls, root: str | Path = DEFAULT_ROOT) -> bool:
        """Whether at least one package or DRAM counter under ``root`` can be read."""
        return bool(find_zones(root))

    def measure_idle(
        self, seconds: float = 1.0, *, sleep: Callable[[float], None] = time.sleep
    ) -> float:
        """Sample counters over ``seconds`` of doing nothing; store and return the idle watts."""
        t0, start = self._wall_clock(), self._read()
        sleep(seconds)
        t1, end = self._wall_clock(), self._read()
        joules = sum(self._per_zone_j(start, end).values())
        self._idle_w = joules / (t1 - t0) if t1 > t0 else 0.0
        return self._idle_w

    def idle_power_w(self) -> float | None:
        return self._idle_w

    def _read(self) -> dict[str, int]:
        return {z.path.name: z.read_uj() for z in self.zones}

    def _per_zone_j(self, start: dict[str, int], end: dict[str, int]) -> dict[str, float]:
        return {
            z.path.name: delta_uj(start[z.path.name], end[z.path.name], z.max_energy_range_uj) / 1e6
            for z in self.zones
        }

    def _energy_between(
        self, start: Any, end: Any, time_s: float, cpu_time_s: float
    ) -> WindowEnergy:
        share = self.alloc_cores / self.machine_cores
        return split_idle(
            self._per_zone_j(start, end), self._idle_w, time_s, "per_zone_j", share=share
        )

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            root=str(self.root),
            zones={z.path.name: z.name for z in self.zones},
            idle_power_w=self._idle_w,
            idle_subtracted=self._idle_w is not None,
            alloc_cores=self.alloc_cores,
            machine_cores=self.machine_cores,
            formula="marginal_j = max(0, sum(delta energy_uj) / 1e6 - idle_power_w * time_s); "
            "total_j = marginal_j + idle_power_w * time_s * alloc_cores / machine_cores",
        )
        return out
