"""estimate:cpu-v2: static + dynamic power model, both views and their bands, by hand."""

from __future__ import annotations

import json

import pytest

from wattlm.errors import WattlmError
from wattlm.measure.cpu_power import CpuIdentity, CpuPower
from wattlm.measure.estimate_v2 import (
    CALIBRATED_SOURCE,
    ESTIMATE_V2_SOURCE,
    CpuV2EstimateMeter,
    PowerModel,
    model_from_table,
    window_energy,
)
from wattlm.measure.profile import CalibrationProfile, cpu_of, default_profile_path
from wattlm.testing.meter_suite import MeterConformance

GIB = 2**30
IDENT = CpuIdentity("AMD EPYC", "AuthenticAMD", family=25, model=17)
GENOA = CpuPower(
    per_core_w=5.625, match="family-model", source="test", sku="AMD EPYC 9554",
    codename="Genoa (Zen 4, EPYC 9004)", tdp_w=360.0, package_cores=64,
)  # fmt: skip


class TestEstimateV2Conformance(MeterConformance):
    def make_meter(self) -> CpuV2EstimateMeter:
        return CpuV2EstimateMeter(identity=IDENT, cpu_power=GENOA, alloc_cores=2, profile=None)


def test_table_model_genoa_by_hand() -> None:
    m = model_from_table(GENOA)
    # Genoa has no Cloud Carbon Footprint figure: the median idle fraction 0.201 applies
    assert m.static_core_w == pytest.approx(0.201 * 5.625)  # 1.130625 W
    assert m.dynamic_core_w == pytest.approx(0.799 * 5.625)  # 4.494375 W
    assert m.static_range_w == pytest.approx((0.153 * 0.5 * 5.625, 0.278 * 1.0 * 5.625))
    assert m.dynamic_range_w == pytest.approx((0.722 * 0.5 * 5.625, 0.847 * 1.0 * 5.625))
    assert m.dram_range_w_per_gb == (0.375, 0.392)


def test_window_one_busy_core_of_two_by_hand() -> None:
    e = window_energy(
        model_from_table(GENOA), time_s=10.0, cpu_time_s=10.0, alloc_cores=2, rss_bytes=2 * GIB
    )
    # static 10 s x 2 cores x 1.130625 W = 22.6125; dynamic 10 CPU-s x 4.494375 W = 44.94375;
    # DRAM 0.375 W/GiB x 2 GiB x 10 s = 7.5; utilisation 10 / (10 x 2) = 0.5
    assert e.total_j == pytest.approx(22.6125 + 44.94375 + 7.5)  # 75.05625
    assert e.marginal_j == pytest.approx(44.94375 + 7.5 * 0.5)  # 48.69375
    # low: 20 x 0.4303125 + 10 x 2.030625 + 7.5; high: 20 x 1.56375 + 10 x 4.764375 + 7.84
    assert e.total_band_j == pytest.approx((36.4125, 86.75875))
    assert e.marginal_band_j == pytest.approx((20.30625 + 3.75, 47.64375 + 3.92))
    assert e.details["static_energy_j"] == pytest.approx(22.6125)
    assert e.details["alloc_cores"] == 2


def test_longer_on_fewer_threads_costs_more_in_total_only() -> None:
    """The bias v1 had: same CPU seconds, but holding two cores twice as long."""
    model = PowerModel(static_core_w=1.0, dynamic_core_w=4.0, dram_w_per_gb=0.0)
    one_thread = window_energy(model, time_s=20.0, cpu_time_s=20.0, alloc_cores=2, rss_bytes=0)
    two_threads = window_energy(model, time_s=10.0, cpu_time_s=20.0, alloc_cores=2, rss_bytes=0)
    assert (one_thread.total_j, two_threads.total_j) == (120.0, 100.0)  # 40+80 vs 20+80
    assert one_thread.marginal_j == two_threads.marginal_j == 80.0


def test_spinning_threads_count_as_busy(clock) -> None:
    # two threads spinning for 5 s show as 10 CPU seconds: both cores busy all the time
    meter = CpuV2EstimateMeter(
        wall_clock=clock(0.0, 5.0), cpu_clock=clock(0.0, 10.0), identity=IDENT,
        model=PowerModel(1.0, 4.0, 0.5), alloc_cores=2, profile=None, rss_bytes=lambda: GIB,
    )  # fmt: skip
    meter.begin_window("w")
    m = meter.end_window("w")
    # total 5 x 2 x 1 + 10 x 4 + 0.5 x 1 x 5 = 52.5; marginal 40 + 2.5 x min(1, 10/10) = 42.5
    assert (m.energy_j, m.energy_marginal_j, m.source) == (52.5, 42.5, ESTIMATE_V2_SOURCE)
    assert m.energy_band_j == [52.5, 52.5]  # no ranges given: the band collapses


def test_describe_names_sources_and_parameters() -> None:
    d = CpuV2EstimateMeter(identity=IDENT, cpu_power=GENOA, alloc_cores=2, profile=None).describe()
    assert d["model"] == "cpu-v2" and d["alloc_cores"] == 2 and d["calibrated"] is False
    assert "median" in d["parameter_sources"]["idle_fraction"]
    assert "CodeCarbon" in d["parameter_sources"]["full_load_fraction_of_tdp"]
    assert json.loads(json.dumps(d))["power_model"]["static_core_w"] == pytest.approx(1.130625)


def test_negative_power_refused() -> None:
    with pytest.raises(WattlmError, match="static_core_w"):
        PowerModel(-1.0, 1.0, 0.0)


def _save_profile(path, identity: CpuIdentity, static=2.0, dynamic=3.0, err=10.0) -> None:
    profile = CalibrationProfile(cpu_of(identity), static, dynamic, "rapl", err)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile.to_dict()))


def test_cached_profile_of_this_cpu_is_used(clock) -> None:
    _save_profile(default_profile_path(), IDENT)
    meter = CpuV2EstimateMeter(
        wall_clock=clock(0.0, 10.0), cpu_clock=clock(0.0, 5.0), identity=IDENT,
        cpu_power=GENOA, alloc_cores=2, rss_bytes=lambda: 0,
    )  # fmt: skip
    assert meter.source == CALIBRATED_SOURCE == "estimate:cpu-v2+calibrated"
    meter.begin_window("w")
    m = meter.end_window("w")
    # 10 s x 2 cores x 2 W + 5 CPU-s x 3 W = 55; band: every power +-10 %
    assert (m.energy_j, m.energy_marginal_j) == (55.0, 15.0)
    assert m.energy_band_j == pytest.approx([49.5, 60.5])
    assert m.source == CALIBRATED_SOURCE
    assert meter.describe()["calibration"]["sensor"] == "rapl"


def test_cached_profile_of_another_cpu_is_ignored_with_a_warning() -> None:
    _save_profile(default_profile_path(), CpuIdentity("Intel Xeon", "GenuineIntel", 6, 143))
    meter = CpuV2EstimateMeter(identity=IDENT, cpu_power=GENOA, alloc_cores=2)
    assert meter.source == ESTIMATE_V2_SOURCE
    assert "not on this one" in meter.describe()["calibration_warning"]


def test_explicit_bad_profiles_raise(tmp_path) -> None:
    other = tmp_path / "other.json"
    _save_profile(other, CpuIdentity("Intel Xeon", "GenuineIntel", 6, 143))
    with pytest.raises(WattlmError, match="made on CPU 'Intel Xeon'"):
        CpuV2EstimateMeter(identity=IDENT, cpu_power=GENOA, profile=other)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    with pytest.raises(WattlmError, match="not readable JSON"):
        CpuV2EstimateMeter(identity=IDENT, cpu_power=GENOA, profile=corrupt)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(WattlmError, match="not a wattlm calibration profile"):
        CpuV2EstimateMeter(identity=IDENT, cpu_power=GENOA, profile=wrong)


def test_torchrun_processes_share_the_held_cores(monkeypatch) -> None:
    from wattlm.measure.cpu_power import allocated_cores

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    meter = CpuV2EstimateMeter(identity=IDENT, cpu_power=GENOA, profile=None)
    assert meter.alloc_cores == allocated_cores() / 2  # two ranks: static counted once in sum
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert CpuV2EstimateMeter(identity=IDENT, cpu_power=GENOA, profile=None).alloc_cores == (
        allocated_cores()
    )
    with pytest.raises(WattlmError, match="alloc_cores must be > 0"):
        CpuV2EstimateMeter(identity=IDENT, cpu_power=GENOA, profile=None, alloc_cores=0)
