"""Fitting estimate:cpu-v2's core powers against a fake sensor with known parameters."""

from __future__ import annotations

import random
from typing import Any

import pytest

from wattlm.errors import WattlmError
from wattlm.measure.base import EnergyMeter
from wattlm.measure.calibrate import (
    CalibrationSample,
    calibrate,
    default_plan,
    fit_powers,
    matmul_workload,
)
from wattlm.measure.cpu_power import CpuIdentity
from wattlm.measure.estimate_v2 import PowerModel
from wattlm.measure.profile import CalibrationProfile

IDENT = CpuIdentity("AMD EPYC", "AuthenticAMD", family=25, model=17)


class FakeMachine:
    """Clocks a fake workload advances: ``threads × load`` CPU-seconds per wall second."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def workload(self, threads: int, load: float, seconds: float) -> None:
        self.wall += seconds
        self.cpu += seconds * threads * load


class FakeSensor(EnergyMeter):
    """Package counters of a machine with ``cores`` cores drawing ``static`` W each, idle,
    and ``dynamic`` W more per busy core; ``noise`` is a relative error per window."""

    source = "rapl"

    def __init__(self, machine: FakeMachine, cores: int, static: float, dynamic: float,
                 noise: float = 0.0) -> None:  # fmt: skip
        super().__init__(cpu_clock=lambda: machine.cpu, wall_clock=lambda: machine.wall)
        self.cores, self.static, self.dynamic, self.noise = cores, static, dynamic, noise
        self.rng = random.Random(7)

    def _read(self) -> None:
        return None

    def _energy_between(self, start: Any, end: Any, time_s: float, cpu_time_s: float):
        exact = time_s * self.cores * self.static + cpu_time_s * self.dynamic
        return exact * (1 + self.rng.uniform(-self.noise, self.noise)), {}


TABLE = PowerModel(static_core_w=1.0, dynamic_core_w=4.0, dram_w_per_gb=0.375)


def test_recovers_known_parameters_exactly() -> None:
    machine = FakeMachine()
    sensor = FakeSensor(machine, cores=8, static=1.7, dynamic=3.2)
    profile, report = calibrate(
        sensor, identity=IDENT, machine_cores=8, table_model=TABLE, seconds=2.0, repeats=2,
        workload=machine.workload,
    )  # fmt: skip
    assert (profile.static_core_w, profile.dynamic_core_w) == pytest.approx((1.7, 3.2))
    assert profile.max_abs_pct_error == pytest.approx(0.0, abs=1e-6)
    assert profile.sensor == "rapl" and profile.cpu["model_name"] == "AMD EPYC"
    assert len(profile.samples) == 2 * len(default_plan(8))
    # the table model (1 W + 4 W) against the truth (1.7 W + 3.2 W), idle: 1 / 1.7 - 1 = -41 %
    assert report["mape_by_workload"]["table"]["idle"] == pytest.approx(100 * 0.7 / 1.7)
    assert CalibrationProfile.from_dict(profile.to_dict(), expect_cpu=IDENT) == profile


def test_recovers_within_tolerance_with_noisy_sensor() -> None:
    machine = FakeMachine()
    sensor = FakeSensor(machine, cores=2, static=2.5, dynamic=6.0, noise=0.02)
    profile, _ = calibrate(
        sensor, identity=IDENT, machine_cores=2, table_model=TABLE, seconds=3.0, repeats=4,
        workload=machine.workload,
    )  # fmt: skip
    assert profile.static_core_w == pytest.approx(2.5, rel=0.05)
    assert profile.dynamic_core_w == pytest.approx(6.0, rel=0.05)
    assert 0 < profile.max_abs_pct_error < 5.0
    assert set(profile.mape_by_workload) == {"idle", "1 thread at 50%", "1 thread at 100%",
                                             "2 threads at 50%", "2 threads at 100%"}  # fmt: skip


def test_fit_needs_two_kinds_of_window() -> None:
    same = [CalibrationSample("busy", 1, 1.0, 1.0, 1.0, 5.0)] * 3
    with pytest.raises(WattlmError, match="cannot separate"):
        fit_powers(same, machine_cores=1)


def test_negative_fit_is_refused() -> None:
    machine = FakeMachine()
    sensor = FakeSensor(machine, cores=2, static=-1.0, dynamic=6.0)
    with pytest.raises(WattlmError, match="negative power"):
        calibrate(sensor, identity=IDENT, machine_cores=2, table_model=TABLE,
                  workload=machine.workload)  # fmt: skip


def test_matmul_workload_runs_briefly() -> None:
    matmul_workload(1, 0.5, 0.05)  # returns after ~50 ms, half of it busy
