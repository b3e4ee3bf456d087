"""summarize(): median CI by order statistics (n >= 6) or Student t (n <= 5), cv, noisy."""

from __future__ import annotations

import math

import pytest

from wattlm.measure.stats import _T975, Stat, median_ci_ranks, summarize


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (5, None),  # best coverage 1 - 2/32 = 0.9375 < 0.95
        (6, (1, 6, 1 - 2 / 64)),
        (10, (2, 9, 1 - 2 * 11 / 1024)),
        # P(B <= 5) for B ~ Bin(20, 1/2) = (1 + 20 + 190 + 1140 + 4845 + 15504) / 2**20
        (20, (6, 15, 1 - 2 * 21700 / 2**20)),
    ],
)
def test_median_ci_ranks_hand_computed(n, expected) -> None:
    got = median_ci_ranks(n)
    if expected is None:
        assert got is None
    else:
        assert got[:2] == expected[:2]
        assert got[2] == pytest.approx(expected[2], rel=1e-12)


def test_median_ci_ranks_n100_matches_tables() -> None:
    # the standard table value for n = 100: the 40th and 61st order statistics
    assert median_ci_ranks(100)[:2] == (40, 61)


def test_order_statistic_interval() -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0]
    s = summarize(values, unit="J")
    assert (s.median, s.ci95_low, s.ci95_high, s.ci_method, s.n, s.unit) == (
        5.5, 2.0, 9.0, "order-statistic", 10, "J",
    )  # fmt: skip
    assert s.ci_coverage == pytest.approx(0.978515625)
    assert s.cv == pytest.approx(math.sqrt(55 / 6) / 5.5)  # sample sd of 1..10 over mean
    assert s.noisy is True


def test_t_interval_matches_scipy() -> None:
    # scipy.stats.t.interval(0.95, df=2, loc=2, scale=1/sqrt(3)) = (-0.48413771175033, 4.48413771175033)
    s = summarize([1.0, 2.0, 3.0])
    assert s.ci_method == "t-mean" and s.median == 2.0 and s.mean == 2.0
    assert s.ci95_high == pytest.approx(4.48413771175033, rel=1e-12)
    assert s.ci95_low == 0.0  # clipped: every value is non-negative


def test_t_interval_not_clipped_for_signed_values() -> None:
    # scipy.stats.t.interval(0.95, df=3, loc=0.5, scale=stdev/2) with stdev = sqrt(5/3)
    s = summarize([-1.0, 0.0, 1.0, 2.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert (s.ci95_low, s.ci95_high) == pytest.approx((0.5 - half, 0.5 + half), rel=1e-12)
    assert s.ci95_low == pytest.approx(-1.554260256760879, rel=1e-12)


def test_t_quantiles_satisfy_closed_form_cdfs() -> None:
    # Student t CDFs in closed form for df = 1..4; each table quantile must give 0.975
    t1, t2, t3, t4 = (_T975[df] for df in (1, 2, 3, 4))
    x3 = t3 / math.sqrt(3)
    cdfs = [
        0.5 + math.atan(t1) / math.pi,
        0.5 + t2 / (2 * math.sqrt(2 + t2 * t2)),
        0.5 + (x3 / (1 + x3 * x3) + math.atan(x3)) / math.pi,
        0.5 + 3 / 8 * t4 / math.sqrt(1 + t4 * t4 / 4) * (1 - t4 * t4 / (12 * (1 + t4 * t4 / 4))),
    ]
    assert cdfs == pytest.approx([0.975] * 4, abs=1e-12)


def test_single_value_has_no_interval() -> None:
    s = summarize([3.0], unit="s")
    assert s == Stat(3.0, None, None, "none", None, 1, False, "s", 3.0)


def test_noisy_threshold() -> None:
    values = [10.0, 10.0, 10.0, 13.0]  # sd 1.5, mean 10.75, cv 0.1395
    assert summarize(values).noisy is True
    assert summarize(values, cv_threshold=0.2).noisy is False
    assert summarize(values).cv == pytest.approx(1.5 / 10.75)


def test_zero_mean_has_no_cv() -> None:
    s = summarize([-1.0, 1.0])
    assert s.cv is None and s.noisy is False


def test_interval_contains_median_and_to_dict() -> None:
    s = summarize([1.0, 1.0, 100.0])
    assert s.ci95_low <= s.median <= s.ci95_high
    assert set(s.to_dict()) >= {
        "median",
        "ci95_low",
        "ci95_high",
        "ci_method",
        "cv",
        "n",
        "noisy",
        "unit",
    }


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_bad_input(bad) -> None:
    with pytest.raises(ValueError):
        summarize(bad)
