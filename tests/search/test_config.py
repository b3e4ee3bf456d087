"""OptimizeConfig: parsing of human forms, validation errors, JSON round-trip."""

import json

import pytest

from wattlm.errors import WattlmError
from wattlm.search.config import OptimizeConfig, StageSettings, parse_budget, parse_duration


@pytest.mark.parametrize(
    ("text", "value"),
    [("2%", 0.02), ("0.5%", 0.005), (" 1 % ", 0.01), ("0.02", 0.02), (0.03, 0.03), ("0%", 0.0)],
)
def test_budget_forms(text, value):
    assert parse_budget(text) == pytest.approx(value)
    assert OptimizeConfig(budget=text).budget == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2", "ambiguous"),
        ("abc", "is not a number"),
        ("-1%", "non-negative"),
        ("150%", "below 100%"),
        ("", "is not a number"),
        ("nan", "non-negative"),
    ],
)
def test_bad_budgets(text, message):
    with pytest.raises(WattlmError, match=message):
        OptimizeConfig(budget=text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20m", 1200.0), ("90s", 90.0), ("1h30m", 5400.0), ("600", 600.0), (45, 45.0), ("1.5m", 90.0)],
)
def test_time_budget_forms(text, seconds):
    assert parse_duration(text) == seconds
    assert OptimizeConfig(time_budget_s=text).time_budget_s == seconds


@pytest.mark.parametrize("text", ["none", None, "off"])
def test_no_time_budget(text):
    assert OptimizeConfig(time_budget_s=text).time_budget_s is None


@pytest.mark.parametrize("text", ["20 minutes", "m20", "5x", "-3m"])
def test_bad_time_budgets(text):
    with pytest.raises(WattlmError, match="time budget"):
        OptimizeConfig(time_budget_s=text)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"objective": "energy"}, "unknown objective 'energy'"),
        ({"sampler": "cmaes"}, "unknown sampler 'cmaes'"),
        ({"meter": "null"}, "unknown meter 'null'"),
        ({"n_trials": 0}, "trials"),
        ({"remeasure": -1}, "re-measured"),
        ({"storage": "runs/opt.db"}, "not a database URL"),
        ({"ppl_stride": 1000}, "stride"),
        ({"screen": {"repeats": 0}}, "repeats must be an integer >= 1"),
    ],
)
def test_invalid_values(kw, message):
    with pytest.raises(WattlmError, match=message):
        OptimizeConfig(**kw)


def test_unknown_keys_are_listed_with_the_valid_ones():
    with pytest.raises(WattlmError) as err:
        OptimizeConfig.from_dict({"budgett": "2%", "samplr": "tpe"})
    assert "budgett, samplr" in err.value.message
    assert "budget" in err.value.hint and "sampler" in err.value.hint
    with pytest.raises(WattlmError, match=r"unknown key\(s\) in screen: repeat"):
        OptimizeConfig.from_dict({"screen": {"repeat": 3}})


def test_json_round_trip_normalises_forms():
    cfg = OptimizeConfig(
        budget="1%", time_budget_s="90s", screen={"repeats": 3}, full=StageSettings(repeats=7)
    )
    again = OptimizeConfig.from_json(json.dumps(cfg.to_dict()))
    assert again == cfg
    assert again.screen.repeats == 3 and again.full.repeats == 7
    assert again.to_dict()["budget"] == 0.01


def test_study_fingerprint_ignores_how_long_but_not_what():
    space = {"methods": {"none": {}}}
    a = OptimizeConfig(threads=2)
    assert a.study_fingerprint(space) == OptimizeConfig(
        threads=2, n_trials=5, time_budget_s="1h", storage="sqlite:///x.db"
    ).study_fingerprint(space)
    assert a.study_fingerprint(space) != OptimizeConfig(threads=2, budget="1%").study_fingerprint(
        space
    )
    assert a.study_fingerprint(space) != a.study_fingerprint({"methods": {"bf16": {}}})
