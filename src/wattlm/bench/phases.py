"""Measure one backend at one batch size: warm-up, then repeats of a prefill window and a
decode window, then per-token statistics. The maths lives here once for every backend.

**Stopping early** (:class:`StopRule`): ``repeats`` is then a cap. After each measured
repeat, the decode energy per generated token of the repeats so far (in the rule's energy
view) is checked:

- ``stop_above``: the median is above this value (J/token) → stop, the configuration is a
  clear loser (``optimize`` prunes it);
- ``rel_width``: at least ``min_repeats`` repeats and the width of the 95% interval
  (:func:`wattlm.measure.stats.summarize`) is at most ``rel_width`` × the median → stop,
  the figure is precise enough (adaptive repeats).

The rule is plain data, so it crosses the process boundary of an isolated run
(:mod:`wattlm.bench.isolated`) as a value. A caller that does not call :func:`run_phases`
itself (``bench`` does) sets it for the calls made inside a block with
:func:`stopping`.
"""

from __future__ import annotations

import contextlib
import contextvars
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wattlm.bench.backends.base import Backend
from wattlm.measure.base import EnergyMeter, Measurement
from wattlm.measure.stats import summarize

J_PER_KWH = 3.6e6

#: why a run stopped before its cap (:attr:`PhaseSamples.stopped`)
STOPPED_ABOVE = "above"
STOPPED_PRECISE = "precise"


@dataclass(frozen=True)
class StopRule:
    """When to stop measuring before ``repeats`` (see the module's docstring).

    Example:
        >>> rule = StopRule(stop_above=0.02, rel_width=0.1)
        >>> rule.check([0.03])  # one repeat above 0.02 J/token: a clear loser
        'above'
        >>> rule.check([0.010]) is None  # one repeat: no interval yet
        True
        >>> rule.check([0.0100, 0.0101])  # t interval 0.01005 ± 12.71 × 0.0000707 / √2: 13% wide
        >>> rule.check([0.0100, 0.0100, 0.0101])  # ± 4.30 × 0.0000577 / √3: 2.9% wide
        'precise'
    """

    #: stop when the median decode J/token so far is above this (``None``: never)
    stop_above: float | None = None
    #: stop when the 95% interval's width is at most this share of the median (``None``: never)
    rel_width: float | None = None
    #: repeats needed before ``rel_width`` is checked
    min_repeats: int = 2
    #: the energy view the rule reads: ``total`` or ``marginal``
    view: str = "total"

    def check(self, per_token: list[float]) -> str | None:
        """Why to stop after these decode J/token figures (one per repeat), or ``None``."""
        if not per_token:
            return None
        if self.stop_above is not None and statistics.median(per_token) > self.stop_above:
            return STOPPED_ABOVE
        if self.rel_width is not None and len(per_token) >= max(2, self.min_repeats):
            stat = summarize(per_token)
            if stat.ci95_low is not None and stat.median > 0:
                width = (stat.ci95_high - stat.ci95_low) / stat.median
                if width <= self.rel_width:
                    return STOPPED_PRECISE
        return None


_RULE: contextvars.ContextVar[StopRule | None] = contextvars.ContextVar("stop_rule", default=None)


@contextlib.contextmanager
def stopping(rule: StopRule | None) -> Iterator[None]:
    """Apply ``rule`` to the :func:`run_phases` calls made inside the block that pass none
    (also those run in an isolated process).

    Example:
        >>> with stopping(StopRule(stop_above=1.0)):
        ...     current_rule().stop_above
        1.0
        >>> current_rule() is None
        True
    """
    token = _RULE.set(rule)
    try:
        yield
    finally:
        _RULE.reset(token)


def current_rule() -> StopRule | None:
    """The rule set by the innermost :func:`stopping` block (``None``: measure every repeat)."""
    return _RULE.get()


@dataclass
class PhaseSamples:
    """Raw windows of every repeat (kept in the result for re-analysis)."""

    prefill: list[Measurement] = field(default_factory=list)
    decode: list[Measurement] = field(default_factory=list)
    #: why the repeats stopped before the cap (``above``, ``precise``), ``None``: they did not
    stopped: str | None = None


def run_phases(
    backend: Backend,
    prompts: list[list[int]],
    *,
    new_tokens: int,
    warmup: int,
    repeats: int,
    meter: EnergyMeter,
    on_step: Callable[[], None] | None = None,
    stop: StopRule | None = None,
) -> PhaseSamples:
    """Run ``warmup`` unmeasured generations, then ``repeats`` measured ones.

    Each measured repeat opens a ``prefill`` window around :meth:`Backend.prefill` (the
    prompt batch → first token) and a ``decode`` window around
    :meth:`Backend.decode` (``new_tokens - 1`` single-token steps). With a ``stop`` rule
    (else the one of an enclosing :func:`stopping` block), ``repeats`` is a cap and the
    repeats end as soon as the rule says so (``PhaseSamples.stopped`` tells why).
    """
    stop = stop if stop is not None else current_rule()
    expected = [new_tokens - 1] * len(prompts)
    tokens = len(prompts) * (new_tokens - 1)
    for _ in range(warmup):
        backend.generate(prompts, new_tokens)
        if on_step:
            on_step()
    samples = PhaseSamples()
    for _ in range(repeats):
        meter.begin_window("prefill")
        backend.prefill(prompts)
        samples.prefill.append(meter.end_window("prefill"))
        meter.begin_window("decode")
        produced = backend.decode(new_tokens - 1)
        samples.decode.append(meter.end_window("decode"))
        got = [len(seq) for seq in produced]
        if got != expected:
            raise RuntimeError(f"backend {backend.name} produced {got} tokens, expected {expected}")
        if on_step:
            on_step()
        if stop is not None:
            energies = [w.energy(stop.view) for w in samples.decode]
            if all(e is not None for e in energies):
                samples.stopped = stop.check([e / tokens for e in energies])
                if samples.stopped is not None:
                    break
    return samples


def _view_stat(
    windows: list[Measurement], view: str, tokens: int, cv: float
) -> dict[str, Any] | None:
    """J/token of ``view`` over the repeats (median, 95% CI), with the model's band when
    every window has one (``band_low``/``band_high``: medians of the per-window band ends)."""
    energies = [w.energy(view) for w in windows]
    if any(e is None for e in energies):
        return None
    stat = summarize([e / tokens for e in energies], cv_threshold=cv, unit="J/token").to_dict()
    bands = [w.band(view) for w in windows]
    if all(b is not None for b in bands):
        stat["band_low"] = statistics.median(b[0] / tokens for b in bands)
        stat["band_high"] = statistics.median(b[1] / tokens for b in bands)
    return stat


def _energy_stats(
    windows: list[Measurement], tokens: int, cv: float, intensity_g_per_kwh: float
) -> dict[str, dict | None]:
    """``energy_j_per_token`` (total view), ``energy_marginal_j_per_token`` and
    ``gco2e_per_token`` (of the total) of one phase."""
    total = _view_stat(windows, "total", tokens, cv)
    grams = None
    if total is not None:
        per_token = [w.energy_j / tokens for w in windows]
        grams = summarize(
            [j * intensity_g_per_kwh / J_PER_KWH for j in per_token],
            cv_threshold=cv,
            unit="gCO2e/token",
        ).to_dict()
    return {
        "energy_j_per_token": total,
        "energy_marginal_j_per_token": _view_stat(windows, "marginal", tokens, cv),
        "gco2e_per_token": grams,
    }


def summarize_phases(
    samples: PhaseSamples,
    *,
    batch_size: int,
    prompt_tokens: int,
    new_tokens: int,
    cv_threshold: float,
    intensity_g_per_kwh: float,
) -> dict[str, Any]:
    """Turn raw windows into the ``prefill`` and ``decode`` sections of a run.

    Prefill processes ``batch_size × prompt_tokens`` tokens; decode produces
    ``batch_size × (new_tokens − 1)`` tokens. Energy per token is the window's energy
    divided by those counts, in both views: ``energy_j_per_token`` is the ``total`` view
    (idle-inclusive), ``energy_marginal_j_per_token`` the ``marginal`` one; estimates add
    their model band (``band_low``/``band_high``) to each.
    """
    pre_tokens = batch_size * prompt_tokens
    dec_tokens = batch_size * (new_tokens - 1)
    pre_t = [w.time_s for w in samples.prefill]
    dec_t = [w.time_s for w in samples.decode]
    pre_e = _energy_stats(samples.prefill, pre_tokens, cv_threshold, intensity_g_per_kwh)
    dec_e = _energy_stats(samples.decode, dec_tokens, cv_threshold, intensity_g_per_kwh)
    cv = cv_threshold
    return {
        "prefill": {
            "time_to_first_token_s": summarize(pre_t, cv_threshold=cv, unit="s").to_dict(),
            "tokens_per_s": summarize(
                [pre_tokens / t for t in pre_t], cv_threshold=cv, unit="tokens/s"
            ).to_dict(),
            **pre_e,
        },
        "decode": {
            "time_s": summarize(dec_t, cv_threshold=cv, unit="s").to_dict(),
            "tokens_per_s": summarize(
                [dec_tokens / t for t in dec_t], cv_threshold=cv, unit="tokens/s"
            ).to_dict(),
            **dec_e,
        },
    }
