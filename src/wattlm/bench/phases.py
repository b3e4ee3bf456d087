"""Measure one backend at one batch size: warm-up, then repeats of a prefill window and a
decode window, then per-token statistics. The maths lives here once for every backend."""

from __future__ import annotations

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


def _energy_stats(
    windows: list[Measurement], tokens: int, cv: float, intensity_g_per_kwh: float
) -> tuple[dict | None, dict | None]:
    energies = [w.energy_j for w in windows]
    if any(e is None for e in energies):
        return None, None
    per_token = [e / tokens for e in energies]
    grams = [j * intensity_g_per_kwh / J_PER_KWH for j in per_token]
    return (
        summarize(per_token, cv_threshold=cv, unit="J/token").to_dict(),
        summarize(grams, cv_threshold=cv, unit="gCO2e/token").to_dict(),
    )


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
    divided by those counts.
    """
    pre_tokens = batch_size * prompt_tokens
    dec_tokens = batch_size * (new_tokens - 1)
    pre_t = [w.time_s for w in samples.prefill]
    dec_t = [w.time_s for w in samples.decode]
    pre_j, pre_g = _energy_stats(samples.prefill, pre_tokens, cv_threshold, intensity_g_per_kwh)
    dec_j, dec_g = _energy_stats(samples.decode, dec_tokens, cv_threshold, intensity_g_per_kwh)
    cv = cv_threshold
    return {
        "prefill": {
            "time_to_first_token_s": summarize(pre_t, cv_threshold=cv, unit="s").to_dict(),
            "tokens_per_s": summarize(
                [pre_tokens / t for t in pre_t], cv_threshold=cv, unit="tokens/s"
            ).to_dict(),
            "energy_j_per_token": pre_j,
            "gco2e_per_token": pre_g,
        },
        "decode": {
            "time_s": summarize(dec_t, cv_threshold=cv, unit="s").to_dict(),
            "tokens_per_s": summarize(
                [dec_tokens / t for t in dec_t], cv_threshold=cv, unit="tokens/s"
            ).to_dict(),
            "energy_j_per_token": dec_j,
            "gco2e_per_token": dec_g,
        },
    }
