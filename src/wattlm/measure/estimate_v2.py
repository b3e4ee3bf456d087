"""The default estimate when no sensor can be read: ``estimate:cpu-v2``.

A static + dynamic power model of the cores the work holds::

    total_j    = time_s * alloc_cores * static_core_w  +  cpu_time_s * dynamic_core_w  +  dram_j
    marginal_j =                                          cpu_time_s * dynamic_core_w  +  dram_j * u
    dram_j     = dram_w_per_gb * rss_gib * time_s,   u = min(1, cpu_time_s / (time_s * alloc_cores))

- ``alloc_cores``: logical CPUs the work may run on (its affinity): held, so paid, while it
  runs, busy or not; under ``torchrun`` the ``LOCAL_WORLD_SIZE`` processes of a machine
  share them, so each holds its share (their sum counts the cores once);
  ``cpu_time_s``: CPU seconds of the work (spinning threads included);
- ``static_core_w = idle_fraction * p_full``, ``dynamic_core_w = (1 - idle_fraction) * p_full``,
  ``p_full = full_load_fraction_of_tdp * tdp_w / package_cores``; the constants and their
  sources are in ``measure/data/cpu_power_v2.json``, TDP and cores in ``cpu_power.json``;
- a calibration profile (``wattlm calibrate``) of this CPU replaces the two core powers
  and the source becomes ``estimate:cpu-v2+calibrated``.

Each figure comes with a band ``[low, high]`` from the parameters' plausible ranges.

Example:
    >>> m = PowerModel(static_core_w=1.0, dynamic_core_w=4.0, dram_w_per_gb=0.0)
    >>> e = window_energy(m, time_s=10.0, cpu_time_s=10.0, alloc_cores=2, rss_bytes=0)
    >>> (e.total_j, e.marginal_j)  # 10 s x 2 cores x 1 W + 10 CPU-s x 4 W
    (60.0, 40.0)
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from wattlm.errors import WattlmError
from wattlm.measure.base import EnergyMeter, WindowEnergy
from wattlm.measure.cpu_power import (
    CpuIdentity,
    CpuPower,
    allocated_cores,
    describe_cpu,
    lookup_cpu_power,
    read_cpu_identity,
)
from wattlm.measure.memory import current_rss_bytes
from wattlm.measure.profile import CalibrationProfile, default_profile_path, load_profile

__all__ = [
    "CALIBRATED_SOURCE",
    "ESTIMATE_V2_SOURCE",
    "CpuV2EstimateMeter",
    "PowerModel",
    "load_v2_table",
    "model_from_table",
    "window_energy",
]

ESTIMATE_V2_SOURCE = "estimate:cpu-v2"
CALIBRATED_SOURCE = "estimate:cpu-v2+calibrated"
FORMULA = (
    "total_j = time_s * alloc_cores * static_core_w + cpu_time_s * dynamic_core_w + dram_j; "
    "marginal_j = cpu_time_s * dynamic_core_w + dram_j * min(1, cpu_time_s / "
    "(time_s * alloc_cores)); dram_j = dram_w_per_gb * rss_bytes / 2**30 * time_s"
)
GIB = 2**30
log = logging.getLogger("wattlm.measure")


@functools.lru_cache(maxsize=1)
def load_v2_table() -> dict[str, Any]:
    """The bundled v2 parameters (``measure/data/cpu_power_v2.json``), parsed once."""
    raw = resources.files("wattlm.measure").joinpath("data/cpu_power_v2.json").read_text("utf-8")
    return json.loads(raw)


@dataclass(frozen=True)
class PowerModel:
    """Per-core static and dynamic watts, DRAM watts per GiB, and each one's range."""

    static_core_w: float
    dynamic_core_w: float
    dram_w_per_gb: float
    static_range_w: tuple[float, float] | None = None
    dynamic_range_w: tuple[float, float] | None = None
    dram_range_w_per_gb: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("static_core_w", "dynamic_core_w", "dram_w_per_gb"):
            if getattr(self, name) < 0:
                raise WattlmError(f"power model: {name} must be >= 0, got {getattr(self, name)}")

    def ranges(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """(static, dynamic, dram) ranges; a parameter without one is its own range."""
        s, d, m = self.static_core_w, self.dynamic_core_w, self.dram_w_per_gb
        return (
            self.static_range_w or (s, s),
            self.dynamic_range_w or (d, d),
            self.dram_range_w_per_gb or (m, m),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (ranges as lists, so a result read back from disk equals this)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _split(
    s: float, d: float, m: float, time_s: float, cpu_s: float, alloc: float, gib: float
) -> tuple[float, float]:
    dram_j = m * gib * time_s
    held = time_s * alloc
    u = min(1.0, cpu_s / held) if held > 0 else 0.0
    return held * s + cpu_s * d + dram_j, cpu_s * d + dram_j * u


def window_energy(
    model: PowerModel, *, time_s: float, cpu_time_s: float, alloc_cores: float, rss_bytes: int
) -> WindowEnergy:
    """Both views of one window under ``model``, with their bands and the terms in details.

    Every term grows with each parameter, so the band's ends are the model evaluated at the
    low and at the high ends of all ranges.

    Example:
        >>> m = PowerModel(1.0, 4.0, 0.0, (0.5, 2.0), (2.0, 5.0), (0.0, 0.0))
        >>> e = window_energy(m, time_s=10.0, cpu_time_s=5.0, alloc_cores=2, rss_bytes=0)
        >>> (e.total_j, e.total_band_j, e.marginal_j, e.marginal_band_j)
        (40.0, (20.0, 65.0), 20.0, (10.0, 25.0))
    """
    cpu_s, t = max(cpu_time_s, 0.0), max(time_s, 0.0)
    gib = max(rss_bytes, 0) / GIB
    total, marginal = _split(
        model.static_core_w, model.dynamic_core_w, model.dram_w_per_gb, t, cpu_s, alloc_cores, gib
    )
    (s_lo, s_hi), (d_lo, d_hi), (m_lo, m_hi) = model.ranges()
    low = _split(s_lo, d_lo, m_lo, t, cpu_s, alloc_cores, gib)
    high = _split(s_hi, d_hi, m_hi, t, cpu_s, alloc_cores, gib)
    details = {
        "static_energy_j": t * alloc_cores * model.static_core_w,
        "dynamic_energy_j": cpu_s * model.dynamic_core_w,
        "memory_energy_j": model.dram_w_per_gb * gib * t,
        "alloc_cores": alloc_cores,
        "rss_bytes": int(rss_bytes),
        "static_core_w": model.static_core_w,
        "dynamic_core_w": model.dynamic_core_w,
        "dram_w_per_gb": model.dram_w_per_gb,
    }
    return WindowEnergy(total, marginal, details, (low[0], high[0]), (low[1], high[1]))


def _idle_fraction(codename: str | None, table: dict[str, Any]) -> tuple[float, str]:
    spec = table["idle_fraction"]
    for entry in spec["by_generation"]:
        if codename and codename.startswith(entry["codename_prefix"]):
            return float(entry["value"]), entry["source"]
    return float(spec["default"]["value"]), spec["default"]["source"]


def model_from_table(cpu: CpuPower, table: dict[str, Any] | None = None) -> PowerModel:
    """The uncalibrated model of ``cpu`` (its per-core TDP share) from the bundled constants.

    Example:
        >>> cpu = CpuPower(per_core_w=5.0, match="model-name", source="test", codename="Milan")
        >>> m = model_from_table(cpu)
        >>> [round(x, 4) for x in (m.static_core_w, m.dynamic_core_w, *m.static_range_w)]
        [1.205, 3.795, 0.3825, 1.39]
    """
    table = table if table is not None else load_v2_table()
    idle, _ = _idle_fraction(cpu.codename, table)
    i_lo, i_hi = table["idle_fraction"]["range"]
    full = table["full_load_fraction_of_tdp"]
    f, (f_lo, f_hi) = float(full["value"]), full["range"]
    dram = table["dram_w_per_gb"]
    p = cpu.per_core_w
    return PowerModel(
        static_core_w=idle * f * p,
        dynamic_core_w=(1 - idle) * f * p,
        dram_w_per_gb=float(dram["value"]),
        static_range_w=(i_lo * f_lo * p, i_hi * f_hi * p),
        dynamic_range_w=((1 - i_hi) * f_lo * p, (1 - i_lo) * f_hi * p),
        dram_range_w_per_gb=(float(dram["range"][0]), float(dram["range"][1])),
    )


def model_from_profile(profile: CalibrationProfile, dram_w_per_gb: float) -> PowerModel:
    """The calibrated model: the fitted powers, each widened by the fit's worst error."""
    err = profile.max_abs_pct_error / 100.0
    s, d = profile.static_core_w, profile.dynamic_core_w
    return PowerModel(
        static_core_w=s,
        dynamic_core_w=d,
        dram_w_per_gb=dram_w_per_gb,
        static_range_w=(s * max(0.0, 1 - err), s * (1 + err)),
        dynamic_range_w=(d * max(0.0, 1 - err), d * (1 + err)),
    )


class CpuV2EstimateMeter(EnergyMeter):
    """``estimate:cpu-v2``: static power of the held cores + dynamic power of busy ones.

    ``alloc_cores`` defaults to this process's affinity divided among the ``torchrun``
    processes of this machine (``LOCAL_WORLD_SIZE``, 1 when unset); ``profile`` is ``"auto"`` (use
    the cached calibration profile when it matches this CPU, else ignore it with a
    warning), a path (must load, else :class:`WattlmError`), or ``None`` (never calibrate).
    ``model`` overrides everything (tests, callers with their own figures).
    """

    source = ESTIMATE_V2_SOURCE
    methods = {  # noqa: RUF012
        "total": "estimate: held cores x static power x wall time + CPU time x dynamic "
        "power + DRAM",
        "marginal": "estimate: CPU time x dynamic power + DRAM x utilisation",
    }

    def __init__(
        self,
        sync: Callable[[], None] | None = None,
        cpu_clock: Callable[[], float] = time.process_time,
        *,
        wall_clock: Callable[[], float] = time.perf_counter,
        identity: CpuIdentity | None = None,
        cpu_power: CpuPower | None = None,
        model: PowerModel | None = None,
        alloc_cores: float | None = None,
        profile: str | Path | None = "auto",
        rss_bytes: Callable[[], int] = current_rss_bytes,
        rss_label: str = "resident set size of this process at window end",
    ) -> None:
        super().__init__(sync, cpu_clock, wall_clock=wall_clock)
        self.identity = identity if identity is not None else read_cpu_identity()
        self.cpu_power = cpu_power if cpu_power is not None else lookup_cpu_power(self.identity)
        if alloc_cores is not None and not alloc_cores > 0:
            raise WattlmError(f"alloc_cores must be > 0, got {alloc_cores}")
        self.alloc_cores = float(alloc_cores or allocated_cores() / _local_processes())
        self.profile: CalibrationProfile | None = None
        self.profile_path: Path | None = None
        self.profile_warning: str | None = None
        if model is None:
            model = self._calibrated_model(profile) or model_from_table(self.cpu_power)
        self.model = model
        if self.profile is not None:
            self.source = CALIBRATED_SOURCE
        self._rss_bytes = rss_bytes
        self._rss_label = rss_label

    def _calibrated_model(self, profile: str | Path | None) -> PowerModel | None:
        if profile is None:
            return None
        path = default_profile_path() if profile == "auto" else Path(profile)
        if profile == "auto" and not path.exists():
            return None
        try:
            self.profile = load_profile(path, expect_cpu=self.identity)
        except WattlmError as err:
            if profile != "auto":
                raise
            self.profile_warning = f"calibration profile ignored: {err}"
            log.warning(self.profile_warning)
            return None
        self.profile_path = path
        dram = float(load_v2_table()["dram_w_per_gb"]["value"])
        return model_from_profile(self.profile, dram)

    def _read(self) -> None:
        return None

    def _energy_between(
        self, start: Any, end: Any, time_s: float, cpu_time_s: float
    ) -> WindowEnergy:
        return window_energy(
            self.model,
            time_s=time_s,
            cpu_time_s=cpu_time_s,
            alloc_cores=self.alloc_cores,
            rss_bytes=int(self._rss_bytes()),
        )

    def describe(self) -> dict[str, Any]:
        p, ident = self.cpu_power, self.identity
        out = super().describe()
        out.update(
            model="cpu-v2",
            formula=FORMULA,
            **describe_cpu(ident, p),
            alloc_cores=self.alloc_cores,
            power_model=self.model.to_dict(),
            calibrated=self.profile is not None,
            calibration=None
            if self.profile is None
            else {
                "path": str(self.profile_path),
                "sensor": self.profile.sensor,
                "created_utc": self.profile.created_utc,
                "max_abs_pct_error": self.profile.max_abs_pct_error,
            },
            parameter_sources=_parameter_sources(p),
            rss=self._rss_label,
            idle_subtracted=False,
            note=(
                "estimate, not a measurement: static power of every held core for the "
                "window's wall time plus dynamic power per CPU-second; the band is from the "
                "parameters' plausible ranges, separate from run-to-run noise"
            ),
        )
        if self.profile_warning:
            out["calibration_warning"] = self.profile_warning
        return out


def _local_processes() -> int:
    """Processes of one job sharing this machine's cores: ``torchrun``'s LOCAL_WORLD_SIZE."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _parameter_sources(cpu: CpuPower) -> dict[str, str]:
    table = load_v2_table()
    _, idle_source = _idle_fraction(cpu.codename, table)
    return {
        "idle_fraction": idle_source,
        "idle_fraction_range": table["idle_fraction"]["range_source"],
        "full_load_fraction_of_tdp": table["full_load_fraction_of_tdp"]["source"],
        "dram_w_per_gb": table["dram_w_per_gb"]["source"],
    }
