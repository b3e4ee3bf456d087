"""RaplMeter on a fake powercap tree: zone discovery, wrap-around, idle subtraction."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.measure.base import EnergyMeter
from wattlm.measure.rapl import RaplMeter, delta_uj, find_zones
from wattlm.testing.meter_suite import MeterConformance

PKG_MAX = 262_143_328_850


class TestRaplConformance(MeterConformance):
    @pytest.fixture(autouse=True)
    def _tree(self, rapl_root) -> None:
        self.root = rapl_root

    def make_meter(self) -> EnergyMeter:
        return RaplMeter(root=self.root)


@pytest.mark.parametrize(
    ("start", "end", "max_range", "expected"),
    [
        (100, 900, 1000, 800),
        (900, 100, 1000, 200),
        (500, 500, 1000, 0),
        (PKG_MAX - 1, 1, PKG_MAX, 2),
    ],
)
def test_delta_wraps_once(start, end, max_range, expected) -> None:
    assert delta_uj(start, end, max_range) == expected


def test_finds_package_and_dram_only(rapl_root) -> None:
    zones = {z.path.name: (z.name, z.max_energy_range_uj) for z in find_zones(rapl_root)}
    assert zones == {
        "intel-rapl:0": ("package-0", PKG_MAX),
        "intel-rapl:0:1": ("dram", 65_712_999_613),
    }


def test_unreadable_or_missing_counters(tmp_path, rapl_tree) -> None:
    assert not RaplMeter.available(tmp_path / "nothing")
    root = rapl_tree(tmp_path / "pc", {"intel-rapl:0": ("package-0", 1, 10)})
    (root / "intel-rapl:0" / "energy_uj").write_text("garbage\n")
    assert not RaplMeter.available(root)
    with pytest.raises(WattlmError, match="no readable RAPL"):
        RaplMeter(root=root)


def test_window_with_wrap_and_idle_subtraction(rapl_root, uj_writer, clock) -> None:
    meter = RaplMeter(
        root=rapl_root, wall_clock=clock(0.0, 1.0, 10.0, 12.0), alloc_cores=4, machine_cores=4
    )

    def idle_sleep(seconds: float) -> None:  # 3 J package + 1 J dram in 1 s of idling
        uj_writer(rapl_root, "intel-rapl:0", 4_000_000)
        uj_writer(rapl_root, "intel-rapl:0:1", 3_000_000)

    assert meter.measure_idle(1.0, sleep=idle_sleep) == 4.0
    uj_writer(rapl_root, "intel-rapl:0", PKG_MAX - 1_000_000)
    meter.begin_window("w")
    uj_writer(rapl_root, "intel-rapl:0", 4_000_000)  # wrapped: 1 J before + 4 J after
    uj_writer(rapl_root, "intel-rapl:0:1", 16_000_000)  # 13 J
    m = meter.end_window("w")
    assert m.time_s == 2.0
    assert m.details == {
        "raw_energy_j": 18.0,
        "idle_energy_j": 8.0,
        "idle_share": 1.0,
        "per_zone_j": {"intel-rapl:0": 5.0, "intel-rapl:0:1": 13.0},
    }
    # the work holds the whole machine: total is the counted 18 J, marginal 18 - 4 W x 2 s
    assert (m.energy_j, m.energy_marginal_j, m.idle_power_w, m.source) == (18.0, 10.0, 4.0, "rapl")
    assert m.energy_band_j is None and set(m.methods) == {"total", "marginal"}
    d = meter.describe()
    assert d["idle_subtracted"] is True and d["idle_power_w"] == 4.0
    assert d["zones"] == {"intel-rapl:0": "package-0", "intel-rapl:0:1": "dram"}


def test_energy_floored_at_zero_with_raw_kept(rapl_root, uj_writer, clock) -> None:
    meter = RaplMeter(
        root=rapl_root, wall_clock=clock(0.0, 1.0, 5.0, 6.0), alloc_cores=1, machine_cores=4
    )
    meter.measure_idle(1.0, sleep=lambda s: uj_writer(rapl_root, "intel-rapl:0", 51_000_000))
    assert meter.idle_power_w() == 50.0
    meter.begin_window("w")
    uj_writer(rapl_root, "intel-rapl:0", 61_000_000)
    m = meter.end_window("w")
    assert m.energy_marginal_j == 0.0
    # total keeps the idle power of 1 of 4 cores: 0 + 50 W x 1 s x 1/4
    assert m.energy_j == 12.5
    assert m.details["raw_energy_j"] == 10.0 and m.details["idle_share"] == 0.25


def test_share_of_machine_keeps_idle_of_held_cores(rapl_root, uj_writer, clock) -> None:
    meter = RaplMeter(
        root=rapl_root, wall_clock=clock(0.0, 2.0, 10.0, 14.0), alloc_cores=2, machine_cores=8
    )
    meter.measure_idle(2.0, sleep=lambda s: uj_writer(rapl_root, "intel-rapl:0", 41_000_000))
    assert meter.idle_power_w() == 20.0  # 40 J in 2 s (dram counter stood still)
    meter.begin_window("w")
    uj_writer(rapl_root, "intel-rapl:0", 141_000_000)  # 100 J in 4 s
    m = meter.end_window("w")
    # marginal: 100 - 20 W x 4 s = 20 J; total: 20 + 20 W x 4 s x 2/8 = 40 J
    assert (m.energy_marginal_j, m.energy_j) == (20.0, 40.0)
    d = meter.describe()
    assert (d["alloc_cores"], d["machine_cores"]) == (2, 8)


def test_no_idle_sampled_means_nothing_subtracted(rapl_root, uj_writer) -> None:
    meter = RaplMeter(root=rapl_root)
    meter.begin_window("w")
    uj_writer(rapl_root, "intel-rapl:0", 3_500_000)
    m = meter.end_window("w")
    assert (m.energy_j, m.energy_marginal_j, m.idle_power_w) == (2.5, 2.5, None)
    assert meter.describe()["idle_subtracted"] is False
