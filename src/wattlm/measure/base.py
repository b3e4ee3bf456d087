"""The energy-meter interface: ``begin_window(name)`` / ``end_window(name) -> Measurement``.

Every meter names where its energy figure comes from in ``Measurement.source``:

- ``nvml``: the NVIDIA GPU's energy counter;
- ``rapl``: Linux powercap (Intel/AMD RAPL) counters;
- ``estimate:<model>``: no sensor; energy computed from CPU time and a documented power model;
- ``unavailable``: no figure at all (``energy_j`` is ``None``).

Every window carries two **energy views** (see ``docs/energy.md``):

- ``total`` (``Measurement.energy_j``): idle-inclusive, what a meter at the wall would see for
  the share of the machine the work holds (its allocated cores), for as long as it holds it;
- ``marginal`` (``Measurement.energy_marginal_j``): what the work added over idle.

``Measurement.methods`` says how each view was obtained; estimates also carry an
uncertainty band per view (``energy_band_j``, ``energy_marginal_band_j``: ``[low, high]``),
which is about the model's parameters, not run-to-run noise.

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
        energy_j: the ``total`` view: idle-inclusive joules of the share of the machine the
            work holds, or ``None`` when no figure exists. (Results of schema version 1
            stored the idle-subtracted figure of measured sources here.)
        source: where the energy figures came from (see module docstring).
        cpu_time_s: process CPU seconds (user + system, all threads) spent in the window.
        idle_power_w: idle power sampled before the run (the ``marginal`` view subtracts
            it), ``None`` if none was sampled.
        details: meter-specific figures (per-device joules, power-model parameters).
        energy_marginal_j: the ``marginal`` view: joules the work added over idle.
        energy_band_j: ``[low, high]`` of ``energy_j`` from the model parameters' plausible
            ranges (estimates only; ``None`` for sensors).
        energy_marginal_band_j: the same band for ``energy_marginal_j``.
        methods: how each view was obtained: ``{"total": ..., "marginal": ...}``.

    Example:
        >>> m = Measurement("w", 2.0, 30.0, "rapl", energy_marginal_j=10.0)
        >>> (m.energy("total"), m.energy("marginal"))
        (30.0, 10.0)
    """

    name: str
    time_s: float
    energy_j: float | None
    source: str
    cpu_time_s: float | None = None
    idle_power_w: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    energy_marginal_j: float | None = None
    energy_band_j: list[float] | None = None
    energy_marginal_band_j: list[float] | None = None
    methods: dict[str, str] = field(default_factory=dict)

    @property
    def is_estimate(self) -> bool:
        return self.source.startswith("estimate:")

    @property
    def energy_total_j(self) -> float | None:
        """The ``total`` view (the same figure as ``energy_j``)."""
        return self.energy_j

    def energy(self, view: str = "total") -> float | None:
        """Joules of ``view`` (``"total"`` or ``"marginal"``)."""
        from wattlm.measure.views import check_view

        return self.energy_j if check_view(view) == "total" else self.energy_marginal_j

    def band(self, view: str = "total") -> list[float] | None:
        """``[low, high]`` model-uncertainty band of ``view``, ``None`` when not modelled."""
        from wattlm.measure.views import check_view

        return self.energy_band_j if check_view(view) == "total" else self.energy_marginal_band_j

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WindowEnergy:
    """Both energy views of one window, as a meter's ``_energy_between`` returns them.

    A meter that returns the older ``(energy_j, details)`` pair gets both views equal to
    ``energy_j`` (and no band).
    """

    total_j: float | None
    marginal_j: float | None
    details: dict[str, Any] = field(default_factory=dict)
    total_band_j: tuple[float, float] | None = None
    marginal_band_j: tuple[float, float] | None = None


def split_idle(
    parts_j: dict[str, float],
    idle_w: float | None,
    time_s: float,
    parts_key: str,
    *,
    share: float = 1.0,
) -> WindowEnergy:
    """Both views of a measured window: ``marginal`` subtracts idle, ``total`` keeps the
    idle power of the held ``share`` of the device (1.0: the whole device).

    ``parts_j`` are the raw joules per device or zone. With no idle sample, nothing can be
    split: both views are the raw figure.

    Example:
        >>> e = split_idle({"0": 30.0, "1": 20.0}, 10.0, 2.0, parts_key="z", share=0.5)
        >>> (e.total_j, e.marginal_j, e.details["idle_energy_j"])
        (40.0, 30.0, 20.0)
    """
    raw_j = sum(parts_j.values())
    if idle_w is None:
        return WindowEnergy(raw_j, raw_j, {"raw_energy_j": raw_j, parts_key: parts_j})
    marginal_j, details = subtract_idle(parts_j, idle_w, time_s, parts_key)
    held_idle_j = idle_w * time_s * share
    details["idle_share"] = share
    return WindowEnergy(marginal_j + held_idle_j, marginal_j, details)


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
    #: how the ``total`` and ``marginal`` views are obtained (``Measurement.methods``)
    methods: dict[str, str] = {}  # noqa: RUF012 - a class-level constant, never mutated

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
    ) -> WindowEnergy | tuple[float | None, dict[str, Any]]:
        """Both views between two snapshots (:class:`WindowEnergy`), or the older
        ``(joules or None, details)`` pair, which counts as both views."""

    def idle_power_w(self) -> float | None:
        """Idle power subtracted from every window, ``None`` when nothing is subtracted."""
        return None

    def describe(self) -> dict[str, Any]:
        """Parameters of this meter, saved in every result (power model, devices, idle).

        Subclasses extend ``super().describe()``; a ``warning`` key appears when the meter
        factory had to fall back from the meter that was asked for.
        """
        out: dict[str, Any] = {"source": self.source, "views": dict(self.methods)}
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
        got = self._energy_between(snap0, snap1, time_s, cpu_s)
        if not isinstance(got, WindowEnergy):
            got = WindowEnergy(got[0], got[0], got[1])
        return Measurement(
            name=name,
            time_s=time_s,
            energy_j=got.total_j,
            source=self.source,
            cpu_time_s=cpu_s,
            idle_power_w=self.idle_power_w(),
            details=got.details,
            energy_marginal_j=got.marginal_j,
            energy_band_j=None if got.total_band_j is None else list(got.total_band_j),
            energy_marginal_band_j=None
            if got.marginal_band_j is None
            else list(got.marginal_band_j),
            methods=dict(self.methods),
        )
