"""Pareto front, ties on overlapping confidence intervals, and the recommendation.

All objectives are minimised. A point *dominates* another when it is no worse in every
objective and strictly better in at least one; the front is the set of points no other
point dominates (equal points do not dominate each other, so both stay).

Example:
    >>> pareto_front([(1.0, 5.0), (2.0, 2.0), (3.0, 3.0), (4.0, 1.0)])
    [0, 1, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wattlm.measure.stats import intervals_overlap

__all__ = ["Choice", "dominates", "intervals_overlap", "pareto_front", "recommend", "ties"]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` dominates ``b`` (minimisation)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points, in input order.

    Points are visited in lexicographic order: a point can only be dominated by one that
    sorts before it, so each is compared with the front found so far (and equal points,
    which do not dominate each other, are all kept).
    """
    order = sorted(range(len(points)), key=lambda i: tuple(points[i]))
    front: list[int] = []
    for i in order:
        if not any(dominates(points[j], points[i]) for j in front):
            front.append(i)
    return sorted(front)


@dataclass(frozen=True)
class Choice:
    """One feasible trial as the recommendation sees it (objective: lower is better)."""

    number: int
    objective: float
    interval: tuple[float, float]
    quality: float  # perplexity: lower is better
    memory: float  # bytes of weights as run


def ties(choices: Sequence[Choice], among: set[int] | None = None) -> list[list[int]]:
    """Pairs ``[a, b]`` (a < b) whose objective intervals overlap: not a win either way.

    ``among`` limits the pairs to those trial numbers (e.g. the front and the recommendation).
    """
    pool = sorted(
        (c for c in choices if among is None or c.number in among), key=lambda c: c.number
    )
    return [
        [a.number, b.number]
        for i, a in enumerate(pool)
        for b in pool[i + 1 :]
        if intervals_overlap(a.interval, b.interval)
    ]


def recommend(choices: Sequence[Choice]) -> tuple[int | None, list[int], str]:
    """The recommended trial, the trials it is tied with, and why it was chosen.

    The lowest median objective wins, unless other trials are tied with it: their interval
    overlaps its own *and* their median lies inside its interval (so that a trial cannot
    win a tie just by being noisy: a wide interval overlaps everything). Among the tied
    trials the one with the best quality (then the smallest memory, then the lowest
    median) is recommended.
    """
    if not choices:
        return None, [], "no feasible trial"
    lowest = min(choices, key=lambda c: (c.objective, c.quality, c.memory, c.number))
    lo, hi = lowest.interval
    tied = [
        c
        for c in choices
        if c is not lowest
        and intervals_overlap(c.interval, lowest.interval)
        and lo <= c.objective <= hi
    ]
    if not tied:
        return lowest.number, [], "lowest energy; no other trial is within its 95% interval"
    best: Callable[[Choice], Any] = lambda c: (c.quality, c.memory, c.objective, c.number)  # noqa: E731
    pick = min([lowest, *tied], key=best)
    others = sorted(c.number for c in [lowest, *tied] if c is not pick)
    why = (
        f"tied on energy (within each other's 95% intervals) with trial(s) "
        f"{', '.join(map(str, others))}; "
        + (
            "it also has the best quality among them"
            if pick is lowest
            else f"chosen over trial {lowest.number} (lowest median energy) for better quality"
            " or smaller memory"
        )
    )
    return pick.number, others, why
