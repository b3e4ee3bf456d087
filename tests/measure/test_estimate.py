"""The estimate's formula, checked exactly with injected clocks and constants."""

from __future__ import annotations

import json

from wattlm.measure.base import EnergyMeter
from wattlm.measure.cpu_power import CpuIdentity, CpuPower, lookup_cpu_power
from wattlm.measure.estimate import ESTIMATE_SOURCE, FORMULA, CpuEstimateMeter
from wattlm.testing.meter_suite import MeterConformance

GENOA_VM = CpuIdentity("AMD EPYC", "AuthenticAMD", 25, 17)
GIB = 2**30


class TestEstimateConformance(MeterConformance):
    def make_meter(self) -> EnergyMeter:
        return CpuEstimateMeter()  # this machine's real CPU and RSS


def test_formula_exact(clock) -> None:
    meter = CpuEstimateMeter(
        cpu_clock=clock(10.0, 14.0),  # 4 CPU seconds
        wall_clock=clock(0.0, 8.0),  # 8 wall seconds
        identity=GENOA_VM,
        rss_bytes=lambda: 2 * GIB,
    )
    meter.begin_window("w")
    m = meter.end_window("w")
    # 4 s * 360 W / 64 cores + 0.375 W/GiB * 2 GiB * 8 s = 22.5 + 6.0
    assert m.energy_j == 28.5
    assert m.details == {
        "cpu_energy_j": 22.5,
        "memory_energy_j": 6.0,
        "rss_bytes": 2 * GIB,
        "per_core_w": 5.625,
        "dram_w_per_gb": 0.375,
    }
    assert (m.source, m.is_estimate, m.idle_power_w, m.cpu_time_s, m.time_s) == (
        ESTIMATE_SOURCE, True, None, 4.0, 8.0,
    )  # fmt: skip


def test_injected_constants_are_used(clock) -> None:
    meter = CpuEstimateMeter(
        cpu_clock=clock(0.0, 3.0),
        wall_clock=clock(0.0, 10.0),
        cpu_power=CpuPower(per_core_w=2.0, match="model-name", source="test"),
        dram_w_per_gb=1.0,
        rss_bytes=lambda: GIB // 2,
        identity=GENOA_VM,
    )
    meter.begin_window("w")
    assert meter.end_window("w").energy_j == 3.0 * 2.0 + 1.0 * 0.5 * 10.0
    assert meter.describe()["dram_source"] == "given by caller"


def test_negative_cpu_time_counts_as_zero(clock) -> None:
    meter = CpuEstimateMeter(
        cpu_clock=clock(5.0, 4.0),
        wall_clock=clock(0.0, 1.0),
        identity=GENOA_VM,
        rss_bytes=lambda: 0,
    )
    meter.begin_window("w")
    assert meter.end_window("w").energy_j == 0.0


def test_describe_genoa_vm() -> None:
    d = CpuEstimateMeter(identity=GENOA_VM).describe()
    json.dumps(d)
    assert d["source"] == "estimate:cpu-tdp-v1"
    assert d["formula"] == FORMULA
    assert d["cpu"] == {
        "model_name": "AMD EPYC",
        "vendor": "AuthenticAMD",
        "family": 25,
        "model": 17,
    }
    assert (d["cpu_match"], d["sku"], d["tdp_w"], d["package_cores"], d["per_core_w"]) == (
        "family-model", "AMD EPYC 9554", 360.0, 64, 5.625,
    )  # fmt: skip
    assert d["dram_w_per_gb"] == 0.375 and d["idle_subtracted"] is False
    assert "AMD EPYC 9554" in d["note"] and "idle power not subtracted" in d["note"]
    assert "warning" not in d


def test_describe_generic_default_is_flagged() -> None:
    ident = CpuIdentity("Mystery CPU", "unknown")
    d = CpuEstimateMeter(identity=ident, cpu_power=lookup_cpu_power(ident)).describe()
    assert d["cpu_match"] == "generic-default"
    assert d["per_core_w"] == 4.0 and d["tdp_w"] is None
    assert "not in the table" in d["note"]
