"""The energy-meter interface: ``begin_window(name)`` / ``end_window(name) -> Measurement``.

Every meter names where its energy figure comes from in ``Measurement.source``:

- ``nvml``: the NVIDIA GPU's energy counter;
- ``rapl``: Linux powercap (Intel/AMD RAPL) counters;
- ``estimate:<model>``: no sensor; energy computed from CPU time and a documented power model;
- ``unavailable``: no figure at all (``energy_j`` is ``None``).

Windows are keyed by name and may nest or overlap. A missing sensor never crashes a run: the
meter factory degrades to an estimate or to ``unavailable``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from wattlm.errors import WattlmError

SOURCE_UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Measurement:
    """What one window measured.

    Attributes:
        name: the window's name.
        time_s: wall-clock seconds between ``begin_window`` and ``end_window``.
        energy_j: joules attributed to the window (idle power already subtracted for
            measured sources), or ``None`` when no figure exists.
        source: where ``energy_j`` came from (see module docstring).
        cpu_time_s: process CPU seconds (user + system, all threads) spent in the window.
        idle_power_w: idle power subtracted from a measured source, ``None`` if none was.
        details: meter-specific figures (per-device joules, power-model parameters).
    """

    name: str
    time_s: float
    energy_j: float | None
    source: str
    cpu_time_s: float | None = None
    idle_power_w: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_estimate(self) -> bool:
        return self.source.startswith("estimate:")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def subtract_idle(
    parts_j: dict[str, float], idle_w: float | None, time_s: float, parts_key: str
) -> tuple[float, dict[str, Any]]:
    """Energy of a window from a measured source, idle power subtracted (floored at 0).

    ``parts_j`` are the raw joules per device or zone; the details keep the raw figure so
    a reader can undo the subtraction.

    Example:
        >>> subtract_idle({"0": 30.0, "1": 20.0}, idle_w=10.0, time_s=2.0, parts_key="per_zone_j")
        (30.0, {'raw_energy_j': 50.0, 'idle_energy_j': 20.0, 'per_zone_j': {'0': 30.0, '1': 20.0}})
    """
    raw_j = sum(parts_j.values())
    idle_j = (idle_w or 0.0) * time_s
    details = {"raw_energy_j": raw_j, "idle_energy_j": idle_j, parts_key: parts_j}
    return max(raw_j - idle_j, 0.0), details


class EnergyMeter(ABC):
    """Base class of every meter.

    Subclasses implement :meth:`_read` (a snapshot of cumulative counters) and
    :meth:`_energy_between` (joules between two snapshots). The base class handles window
    bookkeeping, wall-clock and CPU time, and device synchronisation.

    Example:
        >>> from wattlm.measure.null import NullMeter
        >>> meter = NullMeter()
        >>> meter.begin_window("work")
        >>> m = meter.end_window("work")
        >>> (m.source, m.energy_j)
        ('unavailable', None)
    """

    #: the label written next to every energy figure this meter produces
    source: str = SOURCE_UNAVAILABLE

    def __init__(
        self,
        sync: Callable[[], None] | None = None,
        cpu_clock: Callable[[], float] = time.process_time,
        *,
        wall_clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``sync`` waits for queued device work (e.g. ``torch.cuda.synchronize``);
        ``cpu_clock`` returns cumulative CPU seconds of the work being measured (this
        process by default; ``wattlm measure`` passes one that counts child processes);
        ``wall_clock`` returns monotonic seconds (injectable so tests can be exact)."""
        self._sync = sync
        self._cpu_clock = cpu_clock
        self._wall_clock = wall_clock
        self._open: dict[str, tuple[float, float, Any]] = {}
        #: why this meter is not the one asked for (set by the meter factory), or ``None``
        self.warning: str | None = None

    # -- to implement -------------------------------------------------------------------
    @abstractmethod
    def _read(self) -> Any:
        """Return a snapshot of cumulative counters (any type the subclass understands)."""

    @abstractmethod
    def _energy_between(
        self, start: Any, end: Any, time_s: float, cpu_time_s: float
    ) -> tuple[float | None, dict[str, Any]]:
        """Joules between two snapshots (``None`` if unknown) and details for the record."""

    def idle_power_w(self) -> float | None:
        """Idle power subtracted from every window, ``None`` when nothing is subtracted."""
        return None

    def describe(self) -> dict[str, Any]:
        """Parameters of this meter, saved in every result (power model, devices, idle).

        Subclasses extend ``super().describe()``; a ``warning`` key appears when the meter
        factory had to fall back from the meter that was asked for.
        """
        out: dict[str, Any] = {"source": self.source}
        if self.warning:
            out["warning"] = self.warning
        return out

    def close(self) -> None:
        """Release the sensor (e.g. shut NVML down). Safe to call more than once."""
        return None

    # -- window API ---------------------------------------------------------------------
    def begin_window(self, name: str) -> None:
        """Start a window called ``name`` (after synchronising the device)."""
        if name in self._open:
            raise WattlmError(f"energy window {name!r} is already open")
        if self._sync is not None:
            self._sync()
        self._open[name] = (self._wall_clock(), self._cpu_clock(), self._read())

    def end_window(self, name: str) -> Measurement:
        """Close window ``name`` and return what it measured."""
        if name not in self._open:
            raise WattlmError(f"energy window {name!r} was never opened")
        if self._sync is not None:
            self._sync()
        t1, c1, snap1 = self._wall_clock(), self._cpu_clock(), self._read()
        t0, c0, snap0 = self._open.pop(name)
        time_s, cpu_s = t1 - t0, c1 - c0
        energy_j, details = self._energy_between(snap0, snap1, time_s, cpu_s)
        return Measurement(
            name=name,
            time_s=time_s,
            energy_j=energy_j,
            source=self.source,
            cpu_time_s=cpu_s,
            idle_power_w=self.idle_power_w(),
            details=details,
        )
