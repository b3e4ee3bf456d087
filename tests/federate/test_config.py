from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.federate.config import FederateConfig, faults_for, parse_fault


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"clients": 0}, "--clients must be >= 1"),
        ({"fraction": 0.0}, "--fraction must be in (0, 1]"),
        ({"fraction": 1.5}, "--fraction must be in (0, 1]"),
        ({"alpha": 0.0}, "--alpha must be > 0"),
        ({"alpha": -1.0}, "--alpha must be > 0"),
        ({"strategy": "fedsgd"}, "unknown strategy 'fedsgd'"),
        ({"compression": "zip"}, "unknown compression"),
        ({"rounds": 0}, "--rounds must be >= 1"),
        ({"faults": ("explode@1:0",)}, "bad fault"),
        ({"meter": "wattmeter"}, "unknown meter 'wattmeter'"),
    ],
)
def test_bad_options_raise_one_clear_error(kwargs, fragment):
    with pytest.raises(WattlmError) as err:
        FederateConfig(**kwargs)
    assert fragment in str(err.value)
    assert err.value.hint


def test_round_trips_through_a_dict():
    cfg = FederateConfig(clients=3, alpha=0.5, faults=("crash@1:0",), lora_targets=("q",))
    again = FederateConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(WattlmError, match="unknown key"):
        FederateConfig.from_dict({**cfg.to_dict(), "colour": "red"})


def test_faults_are_addressed_by_round_and_partition():
    cfg = FederateConfig(faults=("crash@1:0", "nan@2:0", "shape@2:1"))
    assert parse_fault("slow@3:2") == ("slow", 3, 2)
    assert faults_for(cfg, 1, 0) == {"crash"}
    assert faults_for(cfg, 2, 0) == {"nan"}
    assert faults_for(cfg, 2, 1) == {"shape"}
    assert faults_for(cfg, 1, 1) == set()
