"""Carbon from energy: grams of CO2-equivalent = kWh × grid intensity (gCO2e/kWh).

The grid intensity is, in order: the value passed in, the ``WATTLM_GRID_INTENSITY``
environment variable, or an offline default: the 2019 world average of 475 gCO2/kWh from
the IEA *Global Energy & CO2 Status Report 2019*, the default used by carbontracker
(``lfwa/carbontracker``, ``carbontracker/constants.py``, ``WORLD_2019_CARBON_INTENSITY``).
No network is used: a local grid can differ several-fold, so pass the right figure.

Example:
    >>> grams_co2e(3.6e6, 475.0)  # 1 kWh on the world-average grid
    475.0
    >>> grid_intensity(100).source
    'argument'
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from wattlm.errors import WattlmError

__all__ = [
    "DEFAULT_GRID_INTENSITY",
    "ENV_VAR",
    "CarbonEstimate",
    "GridIntensity",
    "carbon_of",
    "grams_co2e",
    "grid_intensity",
]

DEFAULT_GRID_INTENSITY = 475.0
DEFAULT_SOURCE = "IEA world average 2019 (Global Energy & CO2 Status Report 2019), offline default"
ENV_VAR = "WATTLM_GRID_INTENSITY"
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class GridIntensity:
    """A grid's carbon intensity in gCO2e per kWh and where the figure came from.

    :meth:`to_dict` gives the ``carbon`` object of ``result.json``.
    """

    value_g_per_kwh: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"grid_intensity_g_per_kwh": self.value_g_per_kwh, "source": self.source}


@dataclass(frozen=True)
class CarbonEstimate:
    """Grams of CO2e for an energy figure (``None`` when the energy is unknown)."""

    grams_co2e: float | None
    intensity_g_per_kwh: float
    intensity_source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(value: float, where: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise WattlmError(
            f"grid intensity from {where} must be a number >= 0 gCO2e/kWh, got {value}"
        )
    return float(value)


def grid_intensity(value: float | None = None) -> GridIntensity:
    """The grid intensity to use: ``value``, else ``$WATTLM_GRID_INTENSITY``, else 475."""
    if value is not None:
        return GridIntensity(_check(value, "the argument"), "argument")
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            parsed = float(env)
        except ValueError:
            raise WattlmError(
                f"{ENV_VAR}={env!r} is not a number", hint="give gCO2e/kWh, e.g. 300"
            ) from None
        return GridIntensity(_check(parsed, ENV_VAR), f"environment {ENV_VAR}")
    return GridIntensity(DEFAULT_GRID_INTENSITY, DEFAULT_SOURCE)


def grams_co2e(energy_j: float, intensity: GridIntensity | float) -> float:
    """Grams of CO2e emitted by ``energy_j`` joules on a grid of ``intensity``."""
    g_per_kwh = intensity.value_g_per_kwh if isinstance(intensity, GridIntensity) else intensity
    return energy_j / J_PER_KWH * g_per_kwh


def carbon_of(energy_j: float | None, intensity: float | None = None) -> CarbonEstimate:
    """Carbon of ``energy_j`` with the grid intensity resolved as :func:`grid_intensity`."""
    grid = grid_intensity(intensity)
    grams = None if energy_j is None else grams_co2e(energy_j, grid)
    return CarbonEstimate(grams, grid.value_g_per_kwh, grid.source)
