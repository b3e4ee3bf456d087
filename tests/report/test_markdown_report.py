"""The Markdown report shows each figure as ``median [lo, hi]`` with its source and marks."""

from __future__ import annotations

import pytest

from wattlm.report.markdown import render_markdown
from wattlm.testing.results import sample_bench_result, sample_measure_result

FOOTNOTE = (
    "† Estimate: not measured by a sensor: CPU time × per-core power model; see docs/energy.md."
)


def _stat(median, lo, hi, unit, noisy=False):
    return {
        "median": median,
        "ci95_low": lo,
        "ci95_high": hi,
        "ci_method": "order-statistic",
        "cv": 0.2 if noisy else 0.01,
        "n": 5,
        "noisy": noisy,
        "unit": unit,
    }


def _quiet_result(**overrides):
    """The sample with no noisy figure."""
    result = sample_bench_result(**overrides)
    for run in result["runs"]:
        for phase in ("prefill", "decode"):
            for stat in run[phase].values():
                if stat is not None:
                    stat["noisy"] = False
    return result


def test_header_model_and_quality():
    md = render_markdown(sample_bench_result())
    assert md.startswith("# wattlm bench: smollm2-135m\n\n2026-11-21 10:00:00 UTC · wattlm 0.1.0 ·")
    assert "perplexity 17.53 · lowest decode energy 0.114 J/token (llamacpp q4_1, batch 1)" in md
    assert (
        "| smollm2-135m | gguf | LlamaForCausalLM | float32 | 134.5 M | 538.1 MB | 98.4 MB "
        "| 1.19 GB |" in md
    )
    assert (
        "Perplexity **17.53** on wiki-sample (test split, 7600 tokens; sliding window 512, "
        "stride 256; torch, float32)." in md
    )
    assert (
        "Median [95% CI] over 5 repeats (after 1 warm-up); prompt 256 tokens, 64 new tokens" in md
    )


def test_performance_row_formats_each_figure():
    result = _quiet_result(schema_version=1)  # an old-format file: one energy view
    run = result["runs"][0]
    run["prefill"].update(
        time_to_first_token_s=_stat(0.4521, 0.4466, 0.4612, "s"),
        tokens_per_s=_stat(566.2, 555.07, 573.3, "tokens/s"),
        energy_j_per_token=_stat(0.025694, 0.02541, 0.02622, "J/token"),
    )
    run["decode"].update(
        tokens_per_s=_stat(17.63, 17.21, 17.74, "tokens/s"),
        energy_j_per_token=_stat(0.8268, 0.8195, 0.8451, "J/token"),
        gco2e_per_token=_stat(1.091e-4, 1.081e-4, 1.115e-4, "gCO2e/token"),
    )
    md = render_markdown(result)
    assert (
        "| backend | batch | TTFT s | prefill tok/s | prefill J/tok | decode tok/s | decode J/tok "
        "| gCO2e / 1k decode tok | energy source |" in md
    )
    assert (
        "| torch float32 | 1 | 0.452 [0.447, 0.461] | 566 [555, 573] | 0.0257 [0.0254, 0.0262] "
        "| 17.6 [17.2, 17.7] | 0.827 [0.820, 0.845] | 0.109 [0.108, 0.112] "
        "| estimate:cpu-tdp-v1† |" in md
    )
    assert "⚠" not in md


def _llamacpp_prefill(result, noisy):
    """Give the llama.cpp run's prefill known figures (noisy or not)."""
    result["runs"][2]["prefill"].update(
        time_to_first_token_s=_stat(0.221, 0.1925, 0.2903, "s", noisy),
        tokens_per_s=_stat(1158.4, 881.3, 1282.0, "tokens/s", noisy),
    )
    return result


def test_noisy_figures_are_marked_and_explained():
    md = render_markdown(_llamacpp_prefill(_quiet_result(), noisy=True))
    assert "| llamacpp q4_1 | 1 | 0.221 [0.193, 0.290] ⚠ | 1158 [881, 1282] ⚠ |" in md
    assert md.count("⚠") == 3  # two figures and the legend
    assert "⚠ = noisy (coefficient of variation above the threshold)." in md


def test_sample_marks_its_noisy_llamacpp_prefill():
    rows = [line for line in render_markdown(sample_bench_result()).splitlines() if "|" in line]
    assert [row.count("⚠") for row in rows[-3:]] == [0, 0, 3]


def test_estimate_footnote_only_for_estimates():
    assert FOOTNOTE in render_markdown(sample_bench_result())
    for source in ("rapl", "nvml", "unavailable"):
        md = render_markdown(sample_bench_result(energy_source=source))
        assert "Estimate:" not in md
        assert "†" not in md


def test_measured_source_says_idle_was_subtracted():
    md = render_markdown(_quiet_result(energy_source="rapl", schema_version=1))
    assert (
        "Energy source `rapl` (idle power subtracted); carbon at 475 gCO2e/kWh, source: IEA" in md
    )
    assert md.count(" | rapl |") == 3


def test_both_views_are_named_and_shown():
    result = _quiet_result(energy_source="rapl")
    md = render_markdown(result)
    assert (
        "Energy source `rapl` (J/tok: total, idle-inclusive; marginal: idle power subtracted)" in md
    )
    assert "| decode J/tok | decode J/tok marginal |" in md
    marginal = result["runs"][0]["decode"]["energy_marginal_j_per_token"]["median"]
    total = result["runs"][0]["decode"]["energy_j_per_token"]["median"]
    assert marginal < total


def test_unavailable_energy_shows_dashes():
    md = render_markdown(_llamacpp_prefill(_quiet_result(energy_source="unavailable"), False))
    assert "| llamacpp q4_1 | 1 | 0.221 [0.193, 0.290] | 1158 [881, 1282] | — |" in md
    assert "| — | — | unavailable |" in md
    assert "fastest decode 128 tokens/s (llamacpp q4_1, batch 1)" in md


def test_single_repeat_shows_the_median_alone():
    result = _quiet_result()
    result["runs"][0]["decode"]["tokens_per_s"] = {
        **_stat(17.63, None, None, "tokens/s"),
        "ci_method": "none",
        "n": 1,
        "cv": None,
    }
    assert "| 17.6 | " in render_markdown(result)


@pytest.mark.parametrize(
    "quality, line",
    [
        (None, "## Quality\n\nNot measured.\n"),
        (
            {
                "metric": "accuracy",
                "value": 0.9123,
                "data": "movie-reviews",
                "split": "test",
                "samples": 1061,
                "backend": "torch",
                "dtype": "bfloat16",
            },
            "Accuracy **91.2%** on movie-reviews (test split, 1061 samples; torch, bfloat16).",
        ),
    ],
)
def test_quality_variants(quality, line):
    assert line in render_markdown(sample_bench_result(quality=quality))


def test_threads_column_appears_when_threads_differ():
    result = sample_bench_result()
    result["runs"][1]["threads"] = 1
    result["runs"][1]["prefill"]["time_to_first_token_s"] = _stat(3.12, 3.08, 3.21, "s")
    md = render_markdown(result)
    assert "| backend | batch | threads | TTFT s |" in md
    assert "| torch float32 | 8 | 1 | 3.12 [3.08, 3.21] |" in md
    assert "varying threads on cpu." in md


def test_notes_and_context():
    md = render_markdown(sample_bench_result(notes=["a | b", "second"]))
    assert "## Notes\n\n- a \\| b\n- second\n" in md
    assert (
        "- CPU: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (2 logical, 1 physical, 2 usable "
        "cores; avx2 avx512f avx512_bf16)\n- threads: 2\n- GPUs: none\n- RAM: 25.8 GB\n"
        "- OS: Linux-6.1.0-x86_64-with-glibc2.36\n- Python: 3.11.9\n"
        "- libraries: torch 2.13.0+cpu, transformers 4.57.1, xllamacpp 0.2.1\n"
        "- wattlm: 0.1.0\n"
    ) in md
    assert md.endswith("- wattlm: 0.1.0\n")
    assert "hostname" not in md  # the rest of the context stays in result.json


def test_context_of_other_shapes():
    context = {
        "cpu": "Apple M2",
        "gpus": [{"name": "NVIDIA H100 80GB HBM3", "index": 0}],
        "ram_bytes": 2**36,
        "os": "Darwin 24.1",
        "python": "3.12.1",
    }
    md = render_markdown(sample_bench_result(context=context))
    assert "- CPU: Apple M2\n- GPUs: NVIDIA H100 80GB HBM3\n- RAM: 68.7 GB\n" in md
    assert "- OS: Darwin 24.1\n- Python: 3.12.1\n" in md
    assert "## Context" not in render_markdown(sample_bench_result(context={}))
    assert "threads" not in render_markdown(sample_measure_result(context={"threads": None}))


def test_measure_report():
    md = render_markdown(sample_measure_result())
    assert md.startswith("# wattlm measure: `python train.py`\n\n2026-11-21 10:05:00 UTC")
    assert (
        "| exit code | time s | CPU time s | energy J | marginal J | gCO2e | energy source |" in md
    )
    assert "| 0 | 12.4 | 24.1 | 180 | 180 | 0.0238 | estimate:cpu-tdp-v1† |" in md
    old = render_markdown(sample_measure_result(schema_version=1))
    assert "| 0 | 12.4 | 24.1 | 180 | 0.0238 | estimate:cpu-tdp-v1† |" in old
    assert FOOTNOTE in md
    assert "## Performance" not in md


def test_measure_without_energy():
    md = render_markdown(sample_measure_result(energy_source="unavailable", exit_code=3))
    assert "| 3 | 12.4 | 24.1 | — | — | — | unavailable |" in md
    assert "Estimate:" not in md


def test_measure_title_survives_backticks():
    md = render_markdown(sample_measure_result(command=["sh", "-c", "echo `date`"]))
    assert md.startswith("# wattlm measure: `` sh -c 'echo `date`' ``\n")
