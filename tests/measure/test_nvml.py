"""NvmlMeter against a fake pynvml module (no GPU on this machine)."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.measure.base import EnergyMeter
from wattlm.measure.nvml import NvmlMeter, list_gpus
from wattlm.testing.meter_suite import MeterConformance


class TestNvmlConformance(MeterConformance):
    @pytest.fixture(autouse=True)
    def _fake(self, fake_nvml) -> None:
        fake_nvml.step_mj = 250  # counters advance on every read

    def make_meter(self) -> EnergyMeter:
        return NvmlMeter()


def test_available_with_fake(fake_nvml) -> None:
    assert NvmlMeter.available()
    assert fake_nvml.init_count == fake_nvml.shutdown_count == 1


def test_unavailable_without_package(no_pynvml) -> None:
    assert NvmlMeter.available() is False
    assert list_gpus() == []
    with pytest.raises(WattlmError, match="nvidia-ml-py"):
        NvmlMeter()


def test_unavailable_without_driver(fake_nvml) -> None:
    fake_nvml.fail_init = True
    assert NvmlMeter.available() is False
    with pytest.raises(WattlmError, match="not usable"):
        NvmlMeter()


def test_unavailable_without_energy_counter(fake_nvml) -> None:
    fake_nvml.energy_supported = False
    assert NvmlMeter.available() is False
    assert fake_nvml.init_count == fake_nvml.shutdown_count


def test_window_exact_with_idle(fake_nvml, clock) -> None:
    meter = NvmlMeter(wall_clock=clock(5.0, 7.0))
    idle = meter.measure_idle(1.0, interval_s=0.5, sleep=lambda s: None)
    assert idle == 120.0  # 50 W + 70 W
    meter.begin_window("w")
    fake_nvml.energy_mj = [410_000, 520_000]  # +400 J, +500 J
    m = meter.end_window("w")
    assert m.details == {
        "raw_energy_j": 900.0,
        "idle_energy_j": 240.0,
        "idle_share": 1.0,
        "per_device_j": {"0": 400.0, "1": 500.0},
    }
    # total: the whole GPUs' 900 J; marginal: 900 - 120 W x 2 s
    assert (m.energy_j, m.energy_marginal_j) == (900.0, 660.0)
    assert (m.idle_power_w, m.time_s, m.source) == (120.0, 2.0, "nvml")
    d = meter.describe()
    assert d["devices"] == [0, 1]
    assert d["idle_power_w_per_device"] == {"0": 50.0, "1": 70.0}


def test_selected_device_only(fake_nvml) -> None:
    meter = NvmlMeter(devices=[1])
    meter.begin_window("w")
    fake_nvml.energy_mj = [999_999, 21_000]
    assert meter.end_window("w").details["per_device_j"] == {"1": 1.0}


@pytest.mark.parametrize("visible", ["1", "GPU-fake-1"])
def test_cuda_visible_devices_maps_to_nvml_index(fake_nvml, monkeypatch, visible) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    meter = NvmlMeter(devices=[0])  # cuda:0 is NVML GPU 1
    meter.begin_window("w")
    fake_nvml.energy_mj = [10_000, 23_000]
    assert meter.end_window("w").details["per_device_j"] == {"0": 3.0}
    assert NvmlMeter().describe()["devices"] == [0]  # one visible GPU


def test_bad_device_raises_and_shuts_down(fake_nvml) -> None:
    with pytest.raises(WattlmError, match="cannot open"):
        NvmlMeter(devices=[5])
    assert fake_nvml.init_count == fake_nvml.shutdown_count == 1


def test_close_is_idempotent(fake_nvml) -> None:
    meter = NvmlMeter()
    meter.close()
    meter.close()
    assert fake_nvml.shutdown_count == 1


def test_list_gpus(fake_nvml) -> None:
    gpus = list_gpus()
    assert [g["name"] for g in gpus] == ["Fake GPU 0", "Fake GPU 1"]
    assert gpus[0]["memory_bytes"] == 80 * 2**30 and gpus[0]["driver"] == "999.1"


def test_empty_cuda_visible_devices_means_no_gpu(fake_nvml, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(WattlmError, match="no GPU"):
        NvmlMeter()
    assert fake_nvml.init_count == fake_nvml.shutdown_count == 1
    with pytest.raises(WattlmError, match="not visible"):
        NvmlMeter(devices=[0])
