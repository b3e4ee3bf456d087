"""A meter with exact, deterministic energy, for tests of code that measures energy.

Example:
    >>> clock = iter([0.0, 2.5]).__next__  # the window lasts exactly 2.5 s
    >>> meter = FakeMeter(power_w=10.0, wall_clock=clock)
    >>> meter.begin_window("w")
    >>> m = meter.end_window("w")
    >>> (m.time_s, m.energy_j, m.energy_marginal_j, m.source)
    (2.5, 25.0, 25.0, 'fake')
    >>> idle = FakeMeter(power_w=10.0, idle_w=4.0, wall_clock=iter([0.0, 2.0]).__next__)
    >>> idle.begin_window("w"); idle.end_window("w").energy_marginal_j
    12.0
    >>> scripted = FakeMeter(energies_j=[1.0, 2.0])
    >>> scripted.begin_window("a"); scripted.end_window("a").energy_j
    1.0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from wattlm.measure.base import EnergyMeter, WindowEnergy

__all__ = ["FakeMeter"]


class FakeMeter(EnergyMeter):
    """Energy from a fixed power (``power_w × time_s``) or a script (one figure per window).

    Exactly one of ``power_w`` and ``energies_j`` is given: the ``total`` view. Scripted
    figures are handed out in the order windows *end*; running out raises ``RuntimeError``
    (a test bug). The ``marginal`` view is ``total − idle_w × time_s`` (floored at 0) when
    ``idle_w`` is given, the total otherwise.
    """

    methods = {  # noqa: RUF012
        "total": "fake: power_w × time_s or scripted",
        "marginal": "fake: total minus idle_w × time_s",
    }

    def __init__(
        self,
        power_w: float | None = None,
        energies_j: Sequence[float] | None = None,
        *,
        source: str = "fake",
        idle_w: float | None = None,
        sync: Callable[[], None] | None = None,
        cpu_clock: Callable[[], float] = time.process_time,
        wall_clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(sync, cpu_clock, wall_clock=wall_clock)
        if (power_w is None) == (energies_j is None):
            raise ValueError("FakeMeter needs exactly one of power_w and energies_j")
        if power_w is not None and power_w < 0:
            raise ValueError(f"power_w must be >= 0, got {power_w}")
        if energies_j is not None and any(e < 0 for e in energies_j):
            raise ValueError(f"energies_j must all be >= 0, got {list(energies_j)}")
        if not source:
            raise ValueError("source must be a non-empty label")
        self.source = source
        self.power_w = power_w
        self._script = list(energies_j) if energies_j is not None else None
        self._idle_w = idle_w
        self.windows_closed = 0

    def _read(self) -> None:
        return None

    def _energy_between(
        self, start: Any, end: Any, time_s: float, cpu_time_s: float
    ) -> WindowEnergy:
        self.windows_closed += 1
        if self._script is None:
            total, details = self.power_w * time_s, {"power_w": self.power_w}
        elif not self._script:
            raise RuntimeError(
                f"FakeMeter script exhausted after {self.windows_closed - 1} windows"
            )
        else:
            total, details = self._script.pop(0), {"scripted": True}
        marginal = total if self._idle_w is None else max(total - self._idle_w * time_s, 0.0)
        return WindowEnergy(total, marginal, details)

    def idle_power_w(self) -> float | None:
        return self._idle_w

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(power_w=self.power_w, scripted=self._script is not None)
        return out
