"""make_meter: kind selection, auto order, and degradation to the estimate with a warning."""

from __future__ import annotations

import logging

import pytest

from wattlm.errors import WattlmError
from wattlm.measure.estimate import CpuEstimateMeter as CpuV1EstimateMeter
from wattlm.measure.estimate_v2 import CpuV2EstimateMeter as CpuEstimateMeter
from wattlm.measure.factory import METER_KINDS, make_meter
from wattlm.measure.null import NullMeter
from wattlm.measure.nvml import NvmlMeter
from wattlm.measure.rapl import RaplMeter


@pytest.fixture
def no_rapl(tmp_path):
    return tmp_path / "no-powercap"


def test_unknown_kind_lists_kinds() -> None:
    with pytest.raises(WattlmError) as info:
        make_meter("joulemeter")
    assert all(k in str(info.value) for k in METER_KINDS)


def test_explicit_estimate_and_null() -> None:
    est = make_meter("Estimate")
    assert isinstance(est, CpuEstimateMeter) and est.warning is None
    assert "warning" not in est.describe()
    assert isinstance(make_meter("null"), NullMeter)


def test_estimate_v1_stays_selectable() -> None:
    v1 = make_meter("estimate-v1")
    assert isinstance(v1, CpuV1EstimateMeter) and v1.source == "estimate:cpu-tdp-v1"
    assert make_meter("estimate").source == "estimate:cpu-v2"


def test_cpu_clock_is_passed_on(clock) -> None:
    meter = make_meter("null", cpu_clock=clock(1.0, 4.0))
    meter.begin_window("w")
    assert meter.end_window("w").cpu_time_s == 3.0


def test_auto_on_cpu_without_rapl_is_a_quiet_estimate(no_rapl, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="wattlm.measure"):
        meter = make_meter("auto", rapl_root=no_rapl)
    assert isinstance(meter, CpuEstimateMeter) and meter.warning is None
    assert not caplog.records


def test_auto_prefers_rapl_and_samples_idle(rapl_root) -> None:
    meter = make_meter("auto", rapl_root=rapl_root, idle_seconds=0.01)
    assert isinstance(meter, RaplMeter)
    assert meter.idle_power_w() == 0.0  # the fake counters stood still
    assert make_meter("rapl", rapl_root=rapl_root, idle_seconds=0).idle_power_w() is None


def test_requested_rapl_missing_degrades_with_warning(no_rapl, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="wattlm.measure"):
        meter = make_meter("rapl", rapl_root=no_rapl)
    assert isinstance(meter, CpuEstimateMeter)
    assert "asked for rapl" in meter.describe()["warning"]
    assert "RAPL unavailable" in caplog.text


def test_requested_nvml_missing_degrades(no_pynvml, no_rapl) -> None:
    meter = make_meter("nvml", rapl_root=no_rapl)
    assert isinstance(meter, CpuEstimateMeter)
    assert "NVML unavailable" in meter.warning


def test_auto_on_cuda_uses_nvml(fake_nvml) -> None:
    meter = make_meter("auto", device="cuda", idle_seconds=0)
    assert isinstance(meter, NvmlMeter) and meter.describe()["devices"] == [0, 1]
    one = make_meter("auto", device="cuda:1", idle_seconds=0)
    assert one.describe()["devices"] == [1]


def test_nvml_idle_is_sampled(fake_nvml) -> None:
    meter = make_meter("nvml", device="cuda:0", idle_seconds=0.05)
    assert meter.idle_power_w() == 50.0


def test_auto_on_cuda_without_nvml_warns_gpu_not_counted(no_pynvml, no_rapl) -> None:
    meter = make_meter("auto", device="cuda", rapl_root=no_rapl)
    assert isinstance(meter, CpuEstimateMeter)
    assert "GPU energy is NOT counted" in meter.describe()["warning"]


def test_nvml_without_energy_counter_degrades_and_shuts_down(fake_nvml, no_rapl) -> None:
    fake_nvml.energy_supported = False
    meter = make_meter("nvml", device="cuda:0", rapl_root=no_rapl)
    assert isinstance(meter, CpuEstimateMeter)
    assert fake_nvml.init_count == fake_nvml.shutdown_count == 1


def test_bad_cuda_device_is_a_user_error() -> None:
    with pytest.raises(WattlmError, match="GPU index"):
        make_meter("auto", device="cuda:first")
