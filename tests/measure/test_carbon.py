"""Grid intensity resolution and grams of CO2e."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.measure.carbon import ENV_VAR, carbon_of, grams_co2e, grid_intensity


@pytest.fixture(autouse=True)
def _no_env(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_default_is_cited_world_average() -> None:
    grid = grid_intensity()
    assert grid.value_g_per_kwh == 475.0
    assert "IEA" in grid.source
    assert grid.to_dict() == {"grid_intensity_g_per_kwh": 475.0, "source": grid.source}


def test_env_then_argument(monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, "300")
    assert grid_intensity().value_g_per_kwh == 300.0
    assert ENV_VAR in grid_intensity().source
    assert grid_intensity(20.0).value_g_per_kwh == 20.0
    assert grid_intensity(20.0).source == "argument"


@pytest.mark.parametrize("env", ["abc", "-5", "nan"])
def test_bad_env_is_a_user_error(monkeypatch, env) -> None:
    monkeypatch.setenv(ENV_VAR, env)
    with pytest.raises(WattlmError, match=ENV_VAR):
        grid_intensity()


def test_negative_argument_rejected() -> None:
    with pytest.raises(WattlmError):
        grid_intensity(-1.0)


def test_grams_exact() -> None:
    assert grams_co2e(3.6e6, 475.0) == 475.0
    assert grams_co2e(7.2e6, grid_intensity(100.0)) == 200.0
    assert carbon_of(1.8e6, 400.0).grams_co2e == 200.0
    est = carbon_of(None)
    assert est.grams_co2e is None and est.intensity_g_per_kwh == 475.0
    assert set(est.to_dict()) == {"grams_co2e", "intensity_g_per_kwh", "intensity_source"}
