"""``load_result`` finds, parses and validates a result.json (file or run folder)."""

from __future__ import annotations

import json

import pytest

from wattlm.errors import WattlmError
from wattlm.report.result import load_result, result_file
from wattlm.testing.results import sample_bench_result, sample_measure_result


def _write(folder, obj):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(obj), encoding="utf-8")
    return folder / "result.json"


def test_loads_a_run_folder_and_a_file(tmp_path):
    file = _write(tmp_path / "run", sample_bench_result())
    assert load_result(tmp_path / "run") == sample_bench_result()
    assert load_result(file)["kind"] == "bench"
    assert result_file(tmp_path / "run") == file


def test_loads_a_measure_result(tmp_path):
    _write(tmp_path, sample_measure_result())
    assert load_result(str(tmp_path))["command"] == ["python", "train.py"]


def test_folder_without_result_json(tmp_path):
    with pytest.raises(WattlmError) as caught:
        load_result(tmp_path)
    assert str(caught.value) == f"no result.json in {tmp_path} (pass a run folder)"


def test_missing_path(tmp_path):
    with pytest.raises(WattlmError, match=r"does not exist$"):
        load_result(tmp_path / "nope.json")


def test_invalid_json(tmp_path):
    (tmp_path / "result.json").write_text("{\n  'kind': 1\n}", encoding="utf-8")
    with pytest.raises(WattlmError) as caught:
        load_result(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'result.json'} is not valid JSON: Expecting property name enclosed in "
        "double quotes at line 2 column 3"
    )


def test_invalid_result_names_the_file_and_path(tmp_path):
    result = sample_bench_result()
    result["memory"]["peak_rss_bytes"] = -1
    file = _write(tmp_path, result)
    with pytest.raises(WattlmError) as caught:
        load_result(file)
    assert str(caught.value) == (
        f"{file} is invalid at $.memory.peak_rss_bytes: -1 is less than the minimum of 0"
    )


def test_newer_schema_version_in_a_file(tmp_path):
    _write(tmp_path, sample_bench_result(schema_version=3))
    with pytest.raises(WattlmError, match=r"schema_version 3, newer .* pip install -U wattlm"):
        load_result(tmp_path)
