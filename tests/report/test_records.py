"""The TypedDicts of wattlm.report.records mirror schema.json key for key."""

import json
from importlib import resources

import pytest

from wattlm.report import records
from wattlm.testing.optimize_record import sample_optimize_record


def _schema() -> dict:
    return json.loads(resources.files("wattlm.report").joinpath("schema.json").read_text())


def _definition(path: tuple[str, ...]) -> dict:
    schema = _schema()
    node = schema["$defs"][path[0]]
    for key in path[1:]:
        node = node["properties"][key]
    return node


@pytest.mark.parametrize("cls", list(records.SCHEMA_DEFS), ids=lambda c: c.__name__)
def test_keys_and_required_keys_match_the_schema(cls):
    node = _definition(records.SCHEMA_DEFS[cls])
    assert set(cls.__annotations__) == set(node["properties"])
    assert set(cls.__required_keys__) == set(node.get("required", []))


def test_every_record_definition_with_fixed_keys_is_covered():
    covered = {path[0] for path in records.SCHEMA_DEFS.values() if len(path) == 1}
    assert {"bench_result", "run", "optimize_trial", "optimize_result"} <= covered


def test_a_written_optimize_record_has_the_typed_keys():
    record = sample_optimize_record()
    assert set(record) <= set(records.OptimizeRecord.__annotations__)
    for trial in record["trials"]:
        assert set(trial) <= set(records.TrialRecord.__annotations__)
        assert set(records.TrialRecord.__required_keys__) <= set(trial)
