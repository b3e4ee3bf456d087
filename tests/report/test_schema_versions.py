"""Schema 2 (both energy views) is what wattlm writes; schema 1 files still validate and
render through ``wattlm report``."""

from __future__ import annotations

import json

import pytest

from wattlm.cli.main import main
from wattlm.report.result import SCHEMA_VERSION, validate_result
from wattlm.testing.results import sample_bench_result, sample_measure_result


@pytest.mark.parametrize("make", [sample_bench_result, sample_measure_result])
@pytest.mark.parametrize("version", [1, 2])
def test_old_and_new_files_report(tmp_path, capsys, make, version) -> None:
    result = make(energy_source="rapl", schema_version=version)
    validate_result(result)
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(result), encoding="utf-8")
    assert main(["report", str(run), "--no-print"]) == 0
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "Energy source `rapl`" in md
    assert ("marginal" in md) == (version == 2)
    assert capsys.readouterr().err == f"wrote {run / 'report.md'}\n"


def test_version_1_has_no_marginal_fields_and_2_has_them() -> None:
    assert SCHEMA_VERSION == 2
    old, new = sample_bench_result(schema_version=1), sample_bench_result()
    assert "energy_marginal_j" not in old["runs"][0]["samples"]["decode"][0]
    assert "views" not in old["energy"] and set(new["energy"]["views"]) == {"total", "marginal"}
    window = new["runs"][0]["samples"]["decode"][0]
    assert window["energy_marginal_j"] == window["energy_j"]  # an estimate without idle


def test_calibrated_estimate_label_and_bands_validate() -> None:
    result = sample_bench_result(energy_source="estimate:cpu-v2+calibrated")
    window = result["runs"][0]["samples"]["decode"][0]
    window["energy_band_j"] = [1.0, 2.0]
    result["runs"][0]["decode"]["energy_j_per_token"].update(band_low=0.1, band_high=0.2)
    validate_result(result)
    window["energy_band_j"] = [1.0]
    with pytest.raises(Exception, match="energy_band_j"):
        validate_result(result)


def test_estimate_band_is_shown_under_the_table() -> None:
    from wattlm.report.markdown import render_markdown

    result = sample_bench_result()
    assert "Model band" not in render_markdown(result)
    result["runs"][0]["decode"]["energy_j_per_token"].update(band_low=0.25, band_high=0.5)
    md = render_markdown(result)
    assert "separate from the 95% CI): torch float32 batch 1: 0.250–0.500." in md
