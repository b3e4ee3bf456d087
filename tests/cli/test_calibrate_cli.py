"""``wattlm calibrate``: no sensor and bad profiles exit 2 writing nothing; a fit with a fake
sensor saves a profile that later estimates use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wattlm.cli import calibrate as cli_calibrate
from wattlm.cli.main import main
from wattlm.measure.base import EnergyMeter
from wattlm.measure.cpu_power import CpuIdentity, read_cpu_identity
from wattlm.measure.factory import make_meter
from wattlm.measure.nvml import NvmlMeter
from wattlm.measure.profile import CalibrationProfile, cpu_of, default_profile_path
from wattlm.measure.rapl import RaplMeter


class _Machine:
    def __init__(self) -> None:
        self.wall, self.cpu = 0.0, 0.0

    def workload(self, threads: int, load: float, seconds: float) -> None:
        self.wall += seconds
        self.cpu += seconds * threads * load


class _Sensor(EnergyMeter):
    """Whole-package counters: ``cores`` x 1.5 W idle + 4.5 W per busy core."""

    source = "rapl"

    def __init__(self, machine: _Machine, cores: int) -> None:
        super().__init__(cpu_clock=lambda: machine.cpu, wall_clock=lambda: machine.wall)
        self.cores = cores

    def _read(self) -> None:
        return None

    def _energy_between(self, start: Any, end: Any, time_s: float, cpu_time_s: float):
        return time_s * self.cores * 1.5 + cpu_time_s * 4.5, {}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WATTLM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def no_sensors(monkeypatch):
    monkeypatch.setattr(RaplMeter, "available", classmethod(lambda cls, root=None: False))
    monkeypatch.setattr(NvmlMeter, "available", classmethod(lambda cls: False))


def _one_error_line(capsys) -> str:
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_no_sensor_says_so_and_exits_2(no_sensors, capsys) -> None:
    assert main(["calibrate", "--seconds", "0.1"]) == 2
    assert "no CPU energy sensor" in _one_error_line(capsys)
    assert not default_profile_path().exists()


def test_nvml_only_is_not_a_cpu_sensor(no_sensors, monkeypatch, capsys) -> None:
    monkeypatch.setattr(NvmlMeter, "available", classmethod(lambda cls: True))
    assert main(["calibrate"]) == 2
    assert "only NVML found" in _one_error_line(capsys)
    assert not default_profile_path().exists()


def test_unknown_sensor(capsys) -> None:
    assert main(["calibrate", "--meter", "wattmeter"]) == 2
    assert "unknown sensor 'wattmeter'" in _one_error_line(capsys)


def test_fit_with_fake_sensor_saves_a_profile_later_runs_use(monkeypatch, capsys) -> None:
    machine = _Machine()
    monkeypatch.setattr(cli_calibrate, "_sensor", lambda kind, cores: _Sensor(machine, cores))
    monkeypatch.setattr(cli_calibrate, "_workload", lambda: machine.workload)
    assert main(["calibrate", "--seconds", "1", "--repeats", "1"]) == 0
    out, err = capsys.readouterr()
    assert "idle" in out and "profile saved to" in out and "W/core" in out
    assert "idle:" in err  # one progress line per window
    saved = json.loads(default_profile_path().read_text())
    assert saved["static_core_w"] == pytest.approx(1.5)
    assert saved["dynamic_core_w"] == pytest.approx(4.5)
    assert saved["cpu"] == cpu_of(read_cpu_identity())
    meter = make_meter("estimate")
    assert meter.source == "estimate:cpu-v2+calibrated"
    assert meter.describe()["power_model"]["static_core_w"] == pytest.approx(1.5)
    assert main(["calibrate", "--show"]) == 0
    assert json.loads(capsys.readouterr().out)["sensor"] == "rapl"


def _profile_file(path, identity: CpuIdentity) -> None:
    profile = CalibrationProfile(cpu_of(identity), 1.0, 3.0, "rapl", 2.0)
    path.write_text(json.dumps(profile.to_dict()))


def test_install_refuses_a_profile_of_another_cpu(tmp_path, capsys) -> None:
    other = tmp_path / "other.json"
    _profile_file(other, CpuIdentity("Some Other CPU 9000", "GenuineIntel", 6, 1))
    assert main(["calibrate", "--install", str(other)]) == 2
    assert "made on CPU 'Some Other CPU 9000'" in _one_error_line(capsys)
    assert not default_profile_path().exists()


def test_install_refuses_a_corrupt_file(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "wattlm-calibration", "version": 1, "model": "cpu-v2", "cpu": ')
    assert main(["calibrate", "--install", str(bad)]) == 2
    assert "not readable JSON" in _one_error_line(capsys)
    assert not default_profile_path().exists()


def test_install_a_profile_of_this_cpu(tmp_path, capsys) -> None:
    mine = tmp_path / "mine.json"
    _profile_file(mine, read_cpu_identity())
    assert main(["calibrate", "--install", str(mine)]) == 0
    assert json.loads(default_profile_path().read_text())["dynamic_core_w"] == 3.0


def test_show_a_corrupt_installed_profile(capsys) -> None:
    path = default_profile_path()
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2")
    assert main(["calibrate", "--show"]) == 2
    assert "not readable JSON" in _one_error_line(capsys)
    assert path.read_text() == "[1, 2"
