"""Per-token statistics of both energy views, with the model band, computed by hand."""

from __future__ import annotations

import pytest

from wattlm.bench.phases import PhaseSamples, summarize_phases
from wattlm.measure.base import Measurement


def _w(name: str, time_s: float, total: float, marginal: float, band=None, mband=None):
    return Measurement(
        name, time_s, total, "estimate:cpu-v2", time_s, None, {},
        energy_marginal_j=marginal, energy_band_j=band, energy_marginal_band_j=mband,
    )  # fmt: skip


def test_total_and_marginal_per_token_with_bands() -> None:
    samples = PhaseSamples(
        prefill=[_w("prefill", 1.0, 40.0, 20.0, [30.0, 50.0], [10.0, 30.0])] * 2,
        decode=[
            _w("decode", 2.0, 30.0, 10.0, [20.0, 40.0], [5.0, 15.0]),
            _w("decode", 2.0, 34.0, 14.0, [24.0, 44.0], [7.0, 17.0]),
        ],
    )
    out = summarize_phases(
        samples, batch_size=2, prompt_tokens=5, new_tokens=3, cv_threshold=0.1,
        intensity_g_per_kwh=3.6e6,  # 1 g per J: carbon equals joules
    )  # fmt: skip
    pre, dec = out["prefill"], out["decode"]
    # prefill: 2 x 5 = 10 tokens; decode: 2 x (3 - 1) = 4 tokens
    assert pre["energy_j_per_token"]["median"] == 4.0
    assert pre["energy_marginal_j_per_token"]["median"] == 2.0
    assert (pre["energy_j_per_token"]["band_low"], pre["energy_j_per_token"]["band_high"]) == (
        3.0,
        5.0,
    )
    assert dec["energy_j_per_token"]["median"] == 8.0  # (7.5 + 8.5) / 2
    assert dec["energy_marginal_j_per_token"]["median"] == 3.0  # (2.5 + 3.5) / 2
    assert dec["energy_marginal_j_per_token"]["band_low"] == pytest.approx(1.5)  # (1.25+1.75)/2
    assert dec["energy_marginal_j_per_token"]["band_high"] == pytest.approx(4.0)
    assert dec["energy_j_per_token"]["ci_method"] == "t-mean"  # two repeats: a 95% CI
    assert dec["gco2e_per_token"]["median"] == 8.0  # carbon of the total view


def test_no_band_without_a_model_and_none_without_energy() -> None:
    sensor = Measurement("decode", 1.0, 9.0, "rapl", 1.0, 2.0, {}, energy_marginal_j=7.0)
    none = Measurement("decode", 1.0, None, "unavailable", 1.0, None, {})
    out = summarize_phases(
        PhaseSamples(prefill=[sensor], decode=[none]), batch_size=1, prompt_tokens=1,
        new_tokens=2, cv_threshold=0.1, intensity_g_per_kwh=475.0,
    )  # fmt: skip
    assert "band_low" not in out["prefill"]["energy_j_per_token"]
    assert out["prefill"]["energy_marginal_j_per_token"]["median"] == 7.0
    assert out["decode"]["energy_j_per_token"] is None
    assert out["decode"]["energy_marginal_j_per_token"] is None
