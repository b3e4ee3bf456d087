"""The result schema accepts every sample and names the path of each kind of mistake."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from wattlm.errors import WattlmError
from wattlm.report.result import SCHEMA_VERSION, load_schema, validate_result
from wattlm.testing.results import sample_bench_result, sample_measure_result

ACCURACY = {
    "metric": "accuracy",
    "value": 0.912,
    "data": "movie-reviews",
    "split": "test",
    "samples": 1061,
    "backend": "torch",
    "dtype": "float32",
}


def test_schema_is_valid_draft_2020_12():
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert SCHEMA_VERSION == max(schema["properties"]["schema_version"]["enum"]) == 2


def test_every_backend_enum_is_the_registry():
    """A backend added to the registry is a backend results may name (and nothing else)."""
    from wattlm.bench.backends import BACKEND_NAMES

    def enums(node):
        if isinstance(node, dict):
            if "backend" in node.get("properties", {}):
                yield node["properties"]["backend"].get("enum")
            for value in node.values():
                yield from enums(value)
        elif isinstance(node, list):
            for value in node:
                yield from enums(value)

    found = [e for e in enums(load_schema()) if e is not None]
    assert len(found) >= 3
    assert all(e == list(BACKEND_NAMES) for e in found)


def test_load_schema_returns_a_fresh_copy():
    load_schema()["$defs"].clear()
    assert "stat" in load_schema()["$defs"]


@pytest.mark.parametrize("source", ["estimate:cpu-tdp-v1", "rapl", "nvml", "unavailable", "fake"])
def test_samples_validate_for_every_source(source):
    validate_result(sample_bench_result(energy_source=source))
    validate_result(sample_measure_result(energy_source=source))


@pytest.mark.parametrize("quality", [None, ACCURACY])
def test_quality_may_be_null_or_accuracy(quality):
    validate_result(sample_bench_result(quality=quality))


def test_open_objects_accept_any_keys():
    result = sample_bench_result()
    result["config"]["anything"] = {"nested": [1, 2]}
    result["context"]["new_fact"] = None
    result["energy"]["meter"]["idle_w"] = 3.2
    result["runs"][0]["backend_details"]["kv_cache"] = "static"
    result["runs"][0]["samples"]["decode"][0]["details"]["joules_by_device"] = {"cpu": 1.0}
    validate_result(result)


def test_stat_extras_and_single_repeat_validate():
    result = sample_bench_result()
    result["runs"][0]["decode"]["tokens_per_s"] = {
        "median": 17.6, "ci95_low": None, "ci95_high": None, "ci_method": "none", "cv": None,
        "n": 1, "noisy": False, "unit": "tokens/s", "mean": 17.6, "ci_coverage": None,
    }  # fmt: skip
    result["runs"][0]["decode"]["time_s"]["ci_coverage"] = 0.979
    validate_result(result)


def test_in_memory_model_validates():
    result = sample_bench_result()
    result["model"].update(format="memory", path=None, disk_bytes=None)
    validate_result(result)


def _set(path, value):
    """A mutation: set the key at ``path`` (a list of keys and indexes) to ``value``."""

    def mutate(obj):
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return mutate


def _delete(path):
    def mutate(obj):
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]

    return mutate


BENCH_MISTAKES = {
    "missing key": (
        _delete(["model", "fingerprint_sha256"]),
        "at $.model: 'fingerprint_sha256' is a required property",
    ),
    "wrong type": (
        _set(["runs", 0, "batch_size"], "8"),
        "at $.runs[0].batch_size: expected integer, got string",
    ),
    "negative energy": (
        _set(["runs", 1, "samples", "decode", 2, "energy_j"], -1.0),
        "at $.runs[1].samples.decode[2].energy_j: -1.0 is less than the minimum of 0",
    ),
    "negative J/token": (
        _set(["runs", 1, "decode", "energy_j_per_token", "median"], -0.1),
        "at $.runs[1].decode.energy_j_per_token.median: -0.1 is less than the minimum of 0",
    ),
    "bad source label": (
        _set(["runs", 0, "energy_source"], "estimate"),
        "at $.runs[0].energy_source: 'estimate' does not match",
    ),
    "upper-case source": (_set(["energy", "source"], "RAPL"), "at $.energy.source: 'RAPL'"),
    "unknown top-level key": (
        _set(["extra"], 1),
        "at $: Additional properties are not allowed ('extra' was unexpected)",
    ),
    "unknown run key": (
        _set(["runs", 2, "foo"], 1),
        "at $.runs[2]: Additional properties are not allowed ('foo' was unexpected)",
    ),
    "null where a stat is required": (
        _set(["runs", 0, "decode", "tokens_per_s"], None),
        "at $.runs[0].decode.tokens_per_s: expected object, got null",
    ),
    "coverage above 1": (
        _set(["runs", 0, "decode", "time_s", "ci_coverage"], 97.9),
        "at $.runs[0].decode.time_s.ci_coverage: 97.9 is greater than the maximum of 1",
    ),
    "stat missing n": (
        _delete(["runs", 0, "decode", "energy_j_per_token", "n"]),
        "at $.runs[0].decode.energy_j_per_token: 'n' is a required property",
    ),
    "noisy not a boolean": (
        _set(["runs", 0, "prefill", "tokens_per_s", "noisy"], "yes"),
        "at $.runs[0].prefill.tokens_per_s.noisy: expected boolean, got string",
    ),
    "boolean as energy": (
        _set(["runs", 0, "samples", "prefill", 0, "energy_j"], True),
        "at $.runs[0].samples.prefill[0].energy_j: expected number or null, got boolean",
    ),
    "unknown backend": (
        _set(["runs", 0, "backend"], "pytorch"),
        "at $.runs[0].backend: 'pytorch' is not one of ['torch', 'llamacpp', 'onnxruntime', 'openvino']",
    ),
    "no runs": (_set(["runs"], []), "at $.runs: [] should be non-empty"),
    "perplexity below 1": (
        _set(["quality", "value"], 0.5),
        "at $.quality.value: 0.5 is less than the minimum of 1",
    ),
    "perplexity without stride": (
        _delete(["quality", "stride"]),
        "at $.quality: 'stride' is a required property",
    ),
    "perplexity with samples": (
        _set(["quality", "samples"], 10),
        "at $.quality.samples: 'samples' is not allowed here",
    ),
    "accuracy above 1": (
        _set(["quality"], {**ACCURACY, "value": 91.2}),
        "at $.quality.value: 91.2 is greater than the maximum of 1",
    ),
    "accuracy with tokens": (
        _set(["quality"], {**ACCURACY, "tokens": 5}),
        "at $.quality.tokens: 'tokens' is not allowed here",
    ),
    "short fingerprint": (
        _set(["model", "fingerprint_sha256"], "abc"),
        "at $.model.fingerprint_sha256: 'abc' does not match '^[0-9a-f]{64}$'",
    ),
    "timestamp not UTC ISO": (_set(["created_utc"], "2026-11-21 10:00"), "at $.created_utc:"),
    "unknown kind": (_set(["kind"], "fit"), "at $.kind: 'fit' is not one of"),
    "missing kind": (_delete(["kind"]), "at $: 'kind' is a required property"),
    "old schema_version": (_set(["schema_version"], 0), "at $.schema_version: 0 is not one of"),
    "schema_version as text": (
        _set(["schema_version"], "1"),
        "at $.schema_version: expected integer, got string",
    ),
}


@pytest.mark.parametrize("mutate, expected", BENCH_MISTAKES.values(), ids=BENCH_MISTAKES.keys())
def test_bench_mistakes_are_caught_with_their_path(mutate, expected):
    result = sample_bench_result()
    mutate(result)
    with pytest.raises(WattlmError) as caught:
        validate_result(result)
    message = str(caught.value)
    assert message.startswith("result is invalid at $")
    assert expected in message
    assert "\n" not in message


MEASURE_MISTAKES = {
    "exit code as text": (_set(["exit_code"], "0"), "at $.exit_code: expected integer, got string"),
    "bench key in a measure result": (
        _set(["runs"], []),
        "at $: Additional properties are not allowed ('runs' was unexpected)",
    ),
    "no measurement": (_delete(["measurement"]), "at $: 'measurement' is a required property"),
    "negative time": (
        _set(["measurement", "time_s"], -0.5),
        "at $.measurement.time_s: -0.5 is less than the minimum of 0",
    ),
    "empty command": (_set(["command"], []), "at $.command: [] should be non-empty"),
}


@pytest.mark.parametrize("mutate, expected", MEASURE_MISTAKES.values(), ids=MEASURE_MISTAKES.keys())
def test_measure_mistakes_are_caught_with_their_path(mutate, expected):
    result = sample_measure_result()
    mutate(result)
    with pytest.raises(WattlmError, match=r"^result is invalid at ") as caught:
        validate_result(result)
    assert expected in str(caught.value)


def test_newer_schema_version_asks_to_upgrade():
    with pytest.raises(WattlmError) as caught:
        validate_result(sample_bench_result(schema_version=3), source="runs/x/result.json")
    assert str(caught.value) == (
        "runs/x/result.json has schema_version 3, newer than this wattlm reads (2) "
        "(upgrade wattlm: pip install -U wattlm)"
    )


def test_a_non_object_is_rejected():
    with pytest.raises(
        WattlmError, match=r"^result is invalid: expected a JSON object, got array$"
    ):
        validate_result([1, 2])


def test_samples_are_fresh_deterministic_json():
    first = sample_bench_result()
    first["model"]["spec"] = "changed"
    first["config"]["backends"].append("x")
    assert sample_bench_result() == sample_bench_result()
    assert sample_bench_result()["model"]["spec"] == "smollm2-135m"
    assert sample_bench_result()["config"]["backends"] == ["torch", "llamacpp"]
    for sample in (sample_bench_result(), sample_measure_result()):
        assert json.loads(json.dumps(sample)) == sample


def test_measured_sample_subtracts_idle_power():
    result = sample_bench_result(energy_source="rapl")
    assert result["energy"]["idle_subtracted"] is True
    assert result["runs"][0]["samples"]["decode"][0]["idle_power_w"] == 4.2
    estimate = sample_bench_result()
    assert estimate["runs"][0]["samples"]["decode"][0]["idle_power_w"] is None
