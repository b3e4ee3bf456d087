"""Median, 95% confidence interval and noise flag of repeated measurements.

The interval depends on how many repeats there are:

- ``n >= 6``: ``"order-statistic"``, the distribution-free interval of the median: the
  ``j``-th smallest and ``j``-th largest values, ``j`` the largest rank whose binomial
  coverage ``1 - 2 * P(Binomial(n, 1/2) <= j - 1)`` is still at least 95% (``n = 5`` can
  reach only 93.75%, hence the threshold);
- ``2 <= n <= 5``: ``"t-mean"``, Student's t interval of the mean, clipped at 0 when every
  value is non-negative and widened to contain the median;
- ``n == 1``: ``"none"``, no interval.

``cv`` is the sample standard deviation over the mean; a figure is ``noisy`` when
``cv > cv_threshold`` (default 10%).

Example:
    >>> s = summarize([10.0, 11.0, 9.0, 10.5, 9.5, 10.2], unit="J")
    >>> (s.median, s.ci95_low, s.ci95_high, s.ci_method, s.noisy)
    (10.1, 9.0, 11.0, 'order-statistic', False)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "Stat",
    "ci_overlap",
    "intervals_overlap",
    "mean_interval",
    "median_ci_ranks",
    "summarize",
    "t975",
]

# Two-sided 95% Student t quantiles t_{0.975, df} (scipy.stats.t.ppf(0.975, df)).
_T975 = {1: 12.706204736174698, 2: 4.302652729749464, 3: 3.182446305284263, 4: 2.7764451051977987}
_Z975 = 1.959963984540054
_MIN_ORDER_N = 6


@dataclass(frozen=True)
class Stat:
    """Summary of ``n`` repeated measurements of one figure."""

    median: float
    ci95_low: float | None
    ci95_high: float | None
    ci_method: str  # "order-statistic" | "t-mean" | "none"
    cv: float | None
    n: int
    noisy: bool
    unit: str = ""
    mean: float | None = None
    ci_coverage: float | None = None  # exact coverage of an order-statistic interval

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two closed intervals ``(low, high)`` share at least one point.

    Example:
        >>> intervals_overlap((1.0, 2.0), (2.0, 3.0)), intervals_overlap((1.0, 2.0), (2.5, 3.0))
        (True, False)
    """
    return a[0] <= b[1] and b[0] <= a[1]


def ci_overlap(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool | None:
    """Whether the 95% intervals of two stats (:meth:`Stat.to_dict` dicts) overlap;
    ``None`` when either has no interval.

    Example:
        >>> a = summarize([10.0, 10.5, 11.0]).to_dict()
        >>> b = summarize([20.0, 20.5, 21.0]).to_dict()
        >>> ci_overlap(a, a), ci_overlap(a, b), ci_overlap(a, summarize([1.0]).to_dict())
        (True, False, None)
    """
    if a is None or b is None or a.get("ci95_low") is None or b.get("ci95_low") is None:
        return None
    return intervals_overlap((a["ci95_low"], a["ci95_high"]), (b["ci95_low"], b["ci95_high"]))


def median_ci_ranks(n: int, level: float = 0.95) -> tuple[int, int, float] | None:
    """1-based ranks ``(j, n + 1 - j)`` of the median's interval and its exact coverage.

    ``None`` when even the sample extremes do not reach ``level``.

    Example:
        >>> median_ci_ranks(10)
        (2, 9, 0.978515625)
    """
    best = None
    cumulative = 0.0
    for j in range(1, n // 2 + 1):
        cumulative += math.comb(n, j - 1) / 2.0**n  # P(B <= j - 1), B ~ Binomial(n, 1/2)
        coverage = 1.0 - 2.0 * cumulative
        if coverage < level:
            break
        best = (j, n + 1 - j, coverage)
    return best


def t975(df: int) -> float:
    """The two-sided 95% Student t quantile for ``df`` degrees of freedom: exact for 1..4,
    the Cornish-Fisher expansion beyond (within 0.1% from 5 on).

    Example:
        >>> round(t975(2), 3), round(t975(30), 3)
        (4.303, 2.042)
    """
    if df in _T975:
        return _T975[df]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_interval(values: list[float]) -> tuple[float, float] | None:
    """The 95% interval of the mean of ``values`` (Student's t); ``None`` under 2 values.

    Clipped at 0 when no value is negative.

    Example:
        >>> mean_interval([1.0, 2.0, 3.0])
        (0.0, 4.484138)
        >>> mean_interval([5.0]) is None
        True
    """
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    low = mean - half
    if min(values) >= 0:
        low = max(low, 0.0)
    return round(low, 6), round(mean + half, 6)


def summarize(values: Iterable[float], *, cv_threshold: float = 0.10, unit: str = "") -> Stat:
    """Median, 95% CI, coefficient of variation and noise flag of ``values``."""
    xs = sorted(float(v) for v in values)
    n = len(xs)
    if n == 0:
        raise ValueError("summarize() needs at least one value")
    if any(math.isnan(x) or math.isinf(x) for x in xs):
        raise ValueError(f"summarize() got a non-finite value: {xs}")
    median = statistics.median(xs)
    mean = statistics.fmean(xs)
    if n == 1:
        return Stat(median, None, None, "none", None, 1, False, unit, mean)
    sd = statistics.stdev(xs)
    cv = sd / abs(mean) if mean != 0 else None
    noisy = cv is not None and cv > cv_threshold
    ranks = median_ci_ranks(n) if n >= _MIN_ORDER_N else None
    if ranks is not None:
        lo_rank, hi_rank, coverage = ranks
        return Stat(
            median, xs[lo_rank - 1], xs[hi_rank - 1], "order-statistic", cv, n, noisy, unit, mean,
            coverage,
        )  # fmt: skip
    half = t975(n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if xs[0] >= 0:
        low = max(low, 0.0)
    low, high = min(low, median), max(high, median)
    return Stat(median, low, high, "t-mean", cv, n, noisy, unit, mean)
