"""``wattlm measure -- CMD``: child CPU time, exit codes, files, and exact figures with a fake."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

import wattlm.measure.factory as factory
from wattlm.cli.main import app, main
from wattlm.measure.carbon import ENV_VAR
from wattlm.report.result import validate_result
from wattlm.testing.meters import FakeMeter

runner = CliRunner()
BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def _measure(*args: str):
    return runner.invoke(app, ["measure", *args], catch_exceptions=False)


def test_counts_the_childs_cpu_time_and_writes_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WATTLM_CACHE", str(tmp_path / "cache"))  # no calibration profile
    out = tmp_path / "run"
    res = _measure("--meter", "estimate", "--out", str(out), "--", sys.executable, "-c", BURN)
    assert res.exit_code == 0, res.output
    result = json.loads((out / "result.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert (result["schema_version"], result["kind"], result["exit_code"]) == (2, "measure", 0)
    assert result["command"] == [sys.executable, "-c", BURN] == config["command"]
    m = result["measurement"]
    assert m["source"] == "estimate:cpu-v2"
    assert 0.29 <= m["cpu_time_s"] <= m["time_s"] + 0.05  # the child burned 0.3 s of CPU
    d = m["details"]
    assert d["dynamic_energy_j"] == m["cpu_time_s"] * d["dynamic_core_w"]
    assert d["static_energy_j"] == m["time_s"] * d["alloc_cores"] * d["static_core_w"]
    total = d["static_energy_j"] + d["dynamic_energy_j"] + d["memory_energy_j"]
    assert m["energy_j"] == pytest.approx(total)
    assert d["dynamic_energy_j"] <= m["energy_marginal_j"] < m["energy_j"]
    low, high = m["energy_band_j"]
    assert low < m["energy_j"] < high
    assert set(m["methods"]) == {"total", "marginal"} == set(result["energy"]["views"])
    assert d["rss_bytes"] > 1_000_000  # the child's peak RSS, not zero
    energy = result["energy"]
    assert energy["source"] == m["source"] and energy["idle_subtracted"] is False
    assert energy["meter"]["rss"] == "peak resident set size of the child process"
    assert result["carbon"]["grid_intensity_g_per_kwh"] == 475.0
    assert "IEA" in result["carbon"]["source"]
    assert result["context"]["wattlm_version"] and result["created_utc"].endswith("Z")
    validate_result(result)  # the shared result.json schema (wattlm.report)
    assert (config["kind"], config["meter"]) == ("measure", "estimate")
    assert "estimate:cpu-v2" in res.output and "marginal J" in res.output


def test_passes_the_exit_code_through(tmp_path) -> None:
    out = tmp_path / "run"
    code = "import sys; sys.exit(3)"
    res = _measure("--meter", "null", "--out", str(out), "--", sys.executable, "-c", code)
    assert res.exit_code == 3
    result = json.loads((out / "result.json").read_text())
    assert result["exit_code"] == 3 and result["measurement"]["energy_j"] is None
    assert result["energy"]["source"] == "unavailable"
    validate_result(result)


def test_exact_figures_with_a_fake_meter(monkeypatch, tmp_path) -> None:
    ticks = iter([100.0, 102.0])  # the window lasts exactly 2 s

    def fake_make_meter(kind, **kwargs):
        return FakeMeter(
            power_w=900.0, cpu_clock=kwargs["cpu_clock"], wall_clock=lambda: next(ticks)
        )

    monkeypatch.setattr(factory, "make_meter", fake_make_meter)
    out = tmp_path / "run"
    args = ("--grid-intensity", "1000", "--out", str(out), "--", sys.executable, "-c", "pass")
    res = _measure(*args)
    assert res.exit_code == 0, res.output
    # 900 W x 2 s = 1800 J = 0.5 Wh -> 0.5 g at 1000 g/kWh
    assert "1800.00" in res.output and "0.5000" in res.output and "fake" in res.output
    result = json.loads((out / "result.json").read_text())
    assert (result["measurement"]["time_s"], result["measurement"]["energy_j"]) == (2.0, 1800.0)
    assert result["carbon"] == {"grid_intensity_g_per_kwh": 1000.0, "source": "argument"}
    validate_result(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--", "wattlm-no-such-command-xyz"], "command not found"),
        ([], "no command to measure"),
        (["--meter", "bogus", "--", "true"], "unknown meter"),
        (["--grid-intensity", "-3", "--", "true"], "grid intensity"),
    ],
)
def test_user_errors_exit_2(capsys, args, message) -> None:
    assert main(["measure", *args]) == 2
    assert message in capsys.readouterr().err


def test_degraded_meter_warning_is_saved(tmp_path) -> None:
    out = tmp_path / "run"
    res = _measure("--meter", "rapl", "--idle-seconds", "0", "--out", str(out), "--", "true")
    assert res.exit_code == 0
    meter = json.loads((out / "result.json").read_text())["energy"]["meter"]
    if meter["source"] != "rapl":  # no readable RAPL here (the usual case)
        assert "asked for rapl" in meter["warning"]
