"""Stopping the repeats early (``StopRule``): a clear loser, a precise-enough figure, and
the rule crossing into an isolated child process as a value."""

from __future__ import annotations

from wattlm.bench.isolated import run_phases_in_child
from wattlm.bench.phases import StopRule, run_phases, stopping
from wattlm.testing.meters import FakeMeter


class _Backend:
    """Produces ``n`` tokens per sequence, instantly."""

    name = "fake"

    def generate(self, prompts, new_tokens):
        return [[0] * new_tokens for _ in prompts]

    def prefill(self, prompts):
        self._n = len(prompts)

    def decode(self, steps):
        return [[0] * steps for _ in range(self._n)]


def _meter(decode_j: list[float]) -> FakeMeter:
    """Prefill windows 1 J each, decode windows as scripted (windows end in that order)."""
    script: list[float] = []
    for d in decode_j:
        script += [1.0, d]
    return FakeMeter(energies_j=script)


# 2 prompts x (5 - 1) new tokens = 8 decode tokens per repeat
PROMPTS = [[1, 2, 3], [4, 5, 6]]


def _run(decode_j: list[float], rule: StopRule | None, repeats: int = 5):
    return run_phases(
        _Backend(), PROMPTS, new_tokens=5, warmup=0, repeats=repeats, meter=_meter(decode_j),
        stop=rule,
    )  # fmt: skip


def test_a_clear_loser_stops_after_one_repeat() -> None:
    # 0.8 J / 8 tokens = 0.1 J/token > 0.05
    samples = _run([0.8] * 5, StopRule(stop_above=0.05))
    assert len(samples.decode) == 1 and len(samples.prefill) == 1
    assert samples.stopped == "above"


def test_below_the_threshold_every_repeat_runs() -> None:
    samples = _run([0.16] * 5, StopRule(stop_above=0.05))  # 0.02 J/token
    assert len(samples.decode) == 5 and samples.stopped is None


def test_the_median_so_far_decides() -> None:
    # per token: 0.02, then 0.2 (median 0.11 > 0.1): stops after the second repeat
    samples = _run([0.16, 1.6, 0.16, 0.16, 0.16], StopRule(stop_above=0.1))
    assert len(samples.decode) == 2 and samples.stopped == "above"


def test_adaptive_repeats_stop_when_the_interval_is_narrow() -> None:
    # per token 0.100, 0.101: t interval half-width 12.706 * 0.000707 / sqrt(2) = 0.00635,
    # 12.6% of the median: not yet within 10%. Third 0.100: mean 0.10033, sd 0.000577,
    # half-width 4.303 * 0.000577 / sqrt(3) = 0.001434: 2.9% wide -> stop at 3.
    samples = _run([0.800, 0.808, 0.800, 0.9, 0.9], StopRule(rel_width=0.10))
    assert len(samples.decode) == 3 and samples.stopped == "precise"


def test_adaptive_repeats_respect_the_minimum_and_the_cap() -> None:
    same = [0.8] * 6
    assert len(_run(same, StopRule(rel_width=0.1, min_repeats=4)).decode) == 4
    noisy = [0.8, 1.6, 0.4, 1.2]  # never within 10%: the cap (4) ends it
    samples = _run(noisy, StopRule(rel_width=0.1), repeats=4)
    assert len(samples.decode) == 4 and samples.stopped is None


def test_without_a_rule_every_repeat_runs_and_a_block_sets_one() -> None:
    assert len(_run([0.8] * 5, None).decode) == 5
    with stopping(StopRule(stop_above=0.05)):
        assert len(_run([0.8] * 5, None).decode) == 1
    assert len(_run([0.8] * 5, None).decode) == 5


def test_the_rule_crosses_into_the_isolated_child(tiny_lm) -> None:
    """A torch run in a spawned process: a threshold of 0 J/token stops it after one of
    five repeats, whether passed or set by an enclosing block."""
    kwargs = {"model": tiny_lm.model, "threads": 1}
    common = {"new_tokens": 4, "warmup": 0, "repeats": 5, "meter_kind": "estimate", "device": "cpu"}
    samples, _, _ = run_phases_in_child("torch", kwargs, [[1, 2, 3]], **common)
    assert len(samples.decode) == 5 and samples.stopped is None
    with stopping(StopRule(stop_above=0.0)):
        samples, _, _ = run_phases_in_child("torch", kwargs, [[1, 2, 3]], **common)
    assert len(samples.decode) == 1 and samples.stopped == "above"
