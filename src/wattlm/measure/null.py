"""The meter of last resort: times a window and reports no energy."""

from __future__ import annotations

from typing import Any

from wattlm.measure.base import SOURCE_UNAVAILABLE, EnergyMeter


class NullMeter(EnergyMeter):
    """No energy in either view (``None``), source ``unavailable``; time is still measured."""

    source = SOURCE_UNAVAILABLE
    methods = {"total": "none", "marginal": "none"}  # noqa: RUF012

    def _read(self) -> None:
        return None

    def _energy_between(
        self, start: Any, end: Any, time_s: float, cpu_time_s: float
    ) -> tuple[float | None, dict[str, Any]]:
        return None, {}
