"""Pareto front, ties and the recommendation, against brute force."""

import random

import pytest

from wattlm.search.pareto import Choice, dominates, pareto_front, recommend, ties


def _brute_force_front(points):
    """Indices no other point dominates, by the definition, all pairs."""
    front = []
    for i, p in enumerate(points):
        dominated = False
        for j, q in enumerate(points):
            if i == j:
                continue
            if all(a <= b for a, b in zip(q, p, strict=True)) and any(
                a < b for a, b in zip(q, p, strict=True)
            ):
                dominated = True
        if not dominated:
            front.append(i)
    return front


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("dims", [2, 3])
def test_front_matches_brute_force(seed, dims):
    rng = random.Random(seed)
    n = rng.randint(1, 40)
    # coarse values so that ties and exact duplicates happen
    points = [tuple(rng.randint(0, 6) / 2 for _ in range(dims)) for _ in range(n)]
    assert pareto_front(points) == _brute_force_front(points)


def test_front_edge_cases():
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [0, 1]  # equal points do not dominate
    assert pareto_front([(1.0, 2.0), (1.0, 1.0)]) == [1]
    assert dominates((1, 1), (1, 2)) and not dominates((1, 1), (1, 1))


def _c(number, energy, half=0.0, ppl=10.0, memory=100.0):
    return Choice(number, energy, (energy - half, energy + half), ppl, memory)


def test_clear_winner_is_recommended_without_ties():
    chosen, tied, why = recommend([_c(0, 1.0, 0.05), _c(1, 0.5, 0.05), _c(2, 0.8, 0.05)])
    assert (chosen, tied) == (1, [])
    assert "lowest energy" in why


def test_overlapping_intervals_are_a_tie_broken_by_quality_then_memory():
    a = _c(3, 0.50, 0.05, ppl=10.5)  # lowest median, worse quality
    b = _c(4, 0.52, 0.05, ppl=10.1)  # tied with a, best quality
    c = _c(5, 0.53, 0.05, ppl=10.1, memory=50.0)  # tied too, same quality, less memory
    d = _c(6, 0.90, 0.01)  # not tied
    chosen, tied, why = recommend([a, b, c, d])
    assert chosen == 5
    assert tied == [3, 4]
    assert "tied on energy" in why and "trial 3" in why
    assert ties([a, b, c, d]) == [[3, 4], [3, 5], [4, 5]]
    assert ties([a, b, c, d], among={3, 6}) == []


def test_nothing_feasible_means_no_recommendation():
    assert recommend([]) == (None, [], "no feasible trial")


def test_intervals_touching_at_one_point_overlap():
    assert ties([_c(1, 1.0, 0.5), _c(2, 2.0, 0.5)]) == [[1, 2]]
    assert ties([_c(1, 1.0, 0.4), _c(2, 2.0, 0.5)]) == []


def test_a_noisy_rival_cannot_win_the_tie_break_by_being_noisy():
    precise = _c(1, 0.20, 0.01, ppl=10.2)  # lowest median, tight interval
    noisy = _c(0, 1.20, 1.20, ppl=10.0)  # 6x the energy, interval [0, 2.4], better quality
    chosen, tied, _ = recommend([precise, noisy])
    assert (chosen, tied) == (1, [])
    assert ties([precise, noisy]) == [[0, 1]]  # still reported: the intervals overlap
