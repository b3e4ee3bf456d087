"""Measure one backend at one batch size: warm-up, then repeats of a prefill window and a
decode window, then per-token statistics. The maths lives here once for every backend."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wattlm.bench.backends.base import Backend
from wattlm.measure.base import EnergyMeter, Measurement
from wattlm.measure.stats import summarize

J_PER_KWH = 3.6e6


@dataclass
class PhaseSamples:
    """Raw windows of every repeat (kept in the result for re-analysis)."""

    prefill: list[Measurement] = field(default_factory=list)
    decode: list[Measurement] = field(default_factory=list)


def run_phases(
    backend: Backend,
    prompts: list[list[int]],
    *,
    new_tokens: int,
    warmup: int,
    repeats: int,
    meter: EnergyMeter,
    on_step: Callable[[], None] | None = None,
) -> PhaseSamples:
    """Run ``warmup`` unmeasured generations, then ``repeats`` measured ones.

    Each measured repeat opens a ``prefill`` window around :meth:`Backend.prefill` (the
    prompt batch → first token) and a ``decode`` window around
    :meth:`Backend.decode` (``new_tokens - 1`` single-token steps).
    """
    expected = [new_tokens - 1] * len(prompts)
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
