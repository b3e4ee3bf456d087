"""NullMeter passes the shared conformance suite."""

from __future__ import annotations

from wattlm.measure.base import EnergyMeter
from wattlm.measure.null import NullMeter
from wattlm.testing.meter_suite import MeterConformance


class TestNullMeterConformance(MeterConformance):
    def make_meter(self) -> EnergyMeter:
        return NullMeter()


def test_null_reports_no_energy_but_times(clock) -> None:
    meter = NullMeter(wall_clock=clock(1.0, 1.5))
    meter.begin_window("w")
    m = meter.end_window("w")
    assert (m.energy_j, m.source, m.time_s, m.is_estimate) == (None, "unavailable", 0.5, False)


def test_warning_appears_in_describe() -> None:
    meter = NullMeter()
    assert "warning" not in meter.describe()
    meter.warning = "fell back"
    assert meter.describe() == {
        "source": "unavailable",
        "views": {"total": "none", "marginal": "none"},
        "warning": "fell back",
    }
