"""Number formatting and the terminal table."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from wattlm.report._format import format_bytes, format_count, format_number, format_stat
from wattlm.report.table import performance_rows, print_result_table
from wattlm.testing.results import sample_bench_result, sample_measure_result


@pytest.mark.parametrize(
    "value, text",
    [
        (0, "0"),
        (1158.4, "1158"),
        (100.0, "100"),
        (87.04, "87.0"),
        (17.59, "17.6"),
        (3.584, "3.58"),
        (0.8196, "0.820"),
        (0.02569, "0.0257"),
        (0.0001234, "0.000123"),
        (0.0000123, "1.23e-05"),
        (-2.5, "-2.50"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize(
    "n, text",
    [
        (None, "—"),
        (999, "999 B"),
        (1000, "1.00 kB"),
        (98_362_432, "98.4 MB"),
        (538_060_032, "538.1 MB"),
        (1_187_512_320, "1.19 GB"),
        (25_769_803_776, "25.8 GB"),
    ],
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_format_stat():
    stat = {
        "median": 1.091e-4,
        "ci95_low": 1.081e-4,
        "ci95_high": 1.115e-4,
        "unit": "gCO2e",
        "ci_method": "t-mean",
        "cv": 0.15,
        "n": 5,
        "noisy": True,
    }
    assert format_stat(stat, 1000) == "0.109 [0.108, 0.112] ⚠"
    assert format_stat({**stat, "ci_method": "none", "noisy": False}, 1000) == "0.109"
    single = {**stat, "n": 1, "ci95_low": None, "ci95_high": None, "cv": None, "noisy": False}
    assert format_stat({**single, "ci_method": "none"}) == "0.000109"
    assert format_stat(None) == "—"


def test_performance_rows_one_per_run():
    headers, rows = performance_rows(sample_bench_result(schema_version=1))
    assert len(headers) == 9
    v2_headers, _ = performance_rows(sample_bench_result())
    assert v2_headers[v2_headers.index("decode J/tok") + 1] == "decode J/tok marginal"
    assert [row[:2] for row in rows] == [
        ["torch float32", "1"],
        ["torch float32", "8"],
        ["llamacpp q4_1", "1"],
    ]
    assert all(len(row) == len(headers) for row in rows)


def _printed(result):
    console = Console(file=io.StringIO(), width=140, record=True)
    print_result_table(result, console)
    return console.export_text()


def test_terminal_table_for_a_bench_result():
    result = sample_bench_result()
    result["runs"][2]["prefill"]["time_to_first_token_s"].update(
        median=0.221, ci95_low=0.1925, ci95_high=0.2903, noisy=True
    )
    text = _printed(result)
    assert "median [95% CI]" in text
    assert "llamacpp q4_1" in text
    assert "0.221 ⚠" in text
    assert "[0.193, 0.290]" in text
    assert "energy source: estimate:cpu-tdp-v1†" in text
    assert "† estimate: not measured by a sensor" in text
    assert "⚠ noisy: coefficient of variation above the threshold" in text


def test_terminal_table_with_mixed_sources_keeps_the_column():
    result = sample_bench_result(energy_source="rapl")
    result["runs"][2]["energy_source"] = "estimate:cpu-tdp-v1"
    text = _printed(result)
    assert "energy source" in text
    assert "rapl" in text
    assert "estimate:cpu-tdp-v1†" in text


def test_terminal_table_for_a_measure_result():
    text = _printed(sample_measure_result(energy_source="nvml"))
    assert "exit code" in text
    assert "12.4" in text
    assert "energy source: nvml" in text
    assert "estimate" not in text


@pytest.mark.parametrize(
    "n, text",
    [(999, "999"), (94_528, "94.5 k"), (134_515_008, "134.5 M"), (7_241_732_096, "7.2 B")],
)
def test_format_count(n, text):
    assert format_count(n) == text


def test_bench_table_starts_with_model_and_quality_lines():
    import io

    from rich.console import Console

    from wattlm.report.table import print_result_table
    from wattlm.testing.results import sample_bench_result

    console = Console(width=200, record=True, file=io.StringIO())
    print_result_table(sample_bench_result(), console)
    lines = console.export_text().splitlines()
    assert lines[0].startswith("smollm2-135m · LlamaForCausalLM float32 · 134.5 M parameters")
    assert lines[1].startswith("Perplexity 17.53 on wiki-sample (test split")
