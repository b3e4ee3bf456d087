"""compare_results: ratios, and ties when the two 95% intervals overlap."""

import copy

from wattlm.compress.compare import compare_results
from wattlm.testing.results import sample_bench_result


def _shift(result, factor):
    """The same result with every decode energy stat (median and interval) scaled."""
    out = copy.deepcopy(result)
    for run in out["runs"]:
        stat = run["decode"]["energy_j_per_token"]
        for key in ("median", "ci95_low", "ci95_high"):
            if stat.get(key) is not None:
                stat[key] *= factor
    return out


def _decode_energy(comparison):
    return next(f for f in comparison["runs"][0]["figures"] if f["figure"] == "decode J/tok")


def test_same_result_is_a_tie_with_ratio_one():
    fig = _decode_energy(compare_results(sample_bench_result(), sample_bench_result()))
    assert fig["ratio"] == 1.0 and fig["ci_overlap"] is True


def test_far_apart_intervals_are_not_a_tie():
    before = sample_bench_result()
    fig = _decode_energy(compare_results(before, _shift(before, 0.2)))
    assert abs(fig["ratio"] - 0.2) < 1e-12
    assert fig["ci_overlap"] is False


def test_a_stat_without_interval_gives_no_verdict():
    before = sample_bench_result()
    after = copy.deepcopy(before)
    after["runs"][0]["decode"]["energy_j_per_token"]["ci95_low"] = None
    after["runs"][0]["decode"]["energy_j_per_token"]["ci95_high"] = None
    assert _decode_energy(compare_results(before, after))["ci_overlap"] is None
