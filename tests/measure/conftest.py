"""Fakes for the sensors this machine lacks: a powercap sysfs tree and a pynvml module."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest


class FakeClock:
    """A clock that returns scripted values, then keeps returning the last one."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)
        self.last = values[0] if values else 0.0

    def __call__(self) -> float:
        if self.values:
            self.last = self.values.pop(0)
        return self.last


def make_rapl_tree(root: Path, zones: dict[str, tuple[str, int, int]]) -> Path:
    """``zones``: folder name -> (zone name, energy_uj, max_energy_range_uj)."""
    for folder, (name, energy, max_range) in zones.items():
        d = root / folder
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{energy}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return root


def set_uj(root: Path, folder: str, value: int) -> None:
    (root / folder / "energy_uj").write_text(f"{value}\n")


@pytest.fixture(autouse=True)
def _no_user_profile(tmp_path_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test picks up a calibration profile from the user's real cache."""
    monkeypatch.setenv("WATTLM_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def clock() -> type[FakeClock]:
    """``clock(0.0, 2.5)``: a scripted clock for ``wall_clock=`` / ``cpu_clock=``."""
    return FakeClock


@pytest.fixture
def uj_writer():
    """``uj_writer(root, "intel-rapl:0", 123)`` sets a fake counter."""
    return set_uj


@pytest.fixture
def rapl_tree():
    """``rapl_tree(root, {folder: (name, energy_uj, max_range_uj)})`` builds a fake tree."""
    return make_rapl_tree


@pytest.fixture
def rapl_root(tmp_path: Path) -> Path:
    """A two-socket-like tree: package-0 and its dram, plus core and psys zones to skip."""
    return make_rapl_tree(
        tmp_path / "powercap",
        {
            "intel-rapl:0": ("package-0", 1_000_000, 262_143_328_850),
            "intel-rapl:0:0": ("core", 500_000, 262_143_328_850),
            "intel-rapl:0:1": ("dram", 2_000_000, 65_712_999_613),
            "intel-rapl:1": ("psys", 9_000_000, 262_143_328_850),
        },
    )


class FakeNvml:
    """State behind a fake ``pynvml`` module: per-GPU energy counters (mJ) and power (mW)."""

    class NVMLError(Exception):
        pass

    def __init__(self, energy_mj: list[int], power_mw: list[int], step_mj: int = 0) -> None:
        self.energy_mj = list(energy_mj)
        self.power_mw = list(power_mw)
        self.step_mj = step_mj
        self.init_count = 0
        self.shutdown_count = 0
        self.fail_init = False
        self.energy_supported = True

    def module(self) -> types.ModuleType:
        mod = types.ModuleType("pynvml")
        mod.NVMLError = self.NVMLError
        for name in dir(self):
            if name.startswith("nvml"):
                setattr(mod, name, getattr(self, name))
        return mod

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.NVMLError("NVML Shared Library Not Found")
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self.shutdown_count += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.energy_mj)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.energy_mj):
            raise self.NVMLError("Invalid Argument")
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int:
        return int(uuid.rsplit("-", 1)[1])

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if not self.energy_supported:
            raise self.NVMLError("Not Supported")
        self.energy_mj[handle] += self.step_mj
        return self.energy_mj[handle]

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self.power_mw[handle]

    def nvmlDeviceGetName(self, handle: int) -> str:
        return f"Fake GPU {handle}"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(total=80 * 2**30)

    def nvmlSystemGetDriverVersion(self) -> str:
        return "999.1"


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    """Two fake GPUs; ``import pynvml`` returns the fake module."""
    fake = FakeNvml(energy_mj=[10_000, 20_000], power_mw=[50_000, 70_000])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module())
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield fake


@pytest.fixture
def no_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import pynvml`` fails as if nvidia-ml-py were not installed."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
