"""FakeMeter: exact energy for tests, and the conformance suite it shares with real meters."""

from __future__ import annotations

import pytest

from wattlm.measure.base import EnergyMeter
from wattlm.testing.meter_suite import MeterConformance
from wattlm.testing.meters import FakeMeter


class TestFakeMeterPowerConformance(MeterConformance):
    def make_meter(self) -> EnergyMeter:
        return FakeMeter(power_w=42.0)


class TestFakeMeterScriptConformance(MeterConformance):
    def make_meter(self) -> EnergyMeter:
        return FakeMeter(energies_j=[1.0] * 10, source="fake-script")


def test_fixed_power_is_exact(clock) -> None:
    meter = FakeMeter(power_w=12.5, wall_clock=clock(100.0, 104.0), cpu_clock=clock(1.0, 3.5))
    meter.begin_window("w")
    m = meter.end_window("w")
    assert m.time_s == 4.0
    assert m.energy_j == 50.0
    assert m.cpu_time_s == 2.5
    assert m.source == "fake"


def test_script_is_handed_out_in_order_windows_end() -> None:
    meter = FakeMeter(energies_j=[3.0, 7.0])
    meter.begin_window("outer")
    meter.begin_window("inner")
    assert meter.end_window("inner").energy_j == 3.0
    assert meter.end_window("outer").energy_j == 7.0
    meter.begin_window("extra")
    with pytest.raises(RuntimeError, match="exhausted"):
        meter.end_window("extra")


def test_idle_is_reported_and_label_kept() -> None:
    meter = FakeMeter(power_w=1.0, idle_w=5.0, source="fake:gpu")
    meter.begin_window("w")
    m = meter.end_window("w")
    assert (m.idle_power_w, m.source) == (5.0, "fake:gpu")
    d = meter.describe()
    assert (d["source"], d["power_w"], d["scripted"]) == ("fake:gpu", 1.0, False)
    assert set(d["views"]) == {"total", "marginal"}


def test_marginal_subtracts_idle(clock) -> None:
    meter = FakeMeter(power_w=10.0, idle_w=4.0, wall_clock=clock(0.0, 3.0, 3.0, 4.0))
    meter.begin_window("w")
    m = meter.end_window("w")
    assert (m.energy_j, m.energy_marginal_j) == (30.0, 18.0)  # 10 W x 3 s; 30 - 4 W x 3 s
    scripted = FakeMeter(energies_j=[1.0], idle_w=5.0, wall_clock=clock(0.0, 1.0))
    scripted.begin_window("s")
    assert scripted.end_window("s").energy_marginal_j == 0.0  # floored


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"power_w": 1.0, "energies_j": [1.0]}, {"power_w": -1.0}, {"energies_j": [-1.0]},
     {"power_w": 1.0, "source": ""}],
)  # fmt: skip
def test_bad_arguments_are_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        FakeMeter(**kwargs)


def test_sync_runs_at_both_ends() -> None:
    calls = []
    meter = FakeMeter(power_w=1.0, sync=lambda: calls.append("sync"))
    meter.begin_window("w")
    meter.end_window("w")
    assert calls == ["sync", "sync"]
