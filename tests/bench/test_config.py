import json

import pytest

from wattlm.bench.config import BenchConfig
from wattlm.errors import WattlmError


def test_json_round_trip():
    cfg = BenchConfig(batch_sizes=(1, 4, 16), backends=("torch", "llamacpp"), threads=2)
    assert BenchConfig.from_json(json.dumps(cfg.to_dict())) == cfg


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_sizes": (1, 0)}, "batch size must be an integer >= 1, got 0"),
        ({"batch_sizes": (-2,)}, "batch size must be an integer >= 1, got -2"),
        ({"backends": ("onnx",)}, "unknown backend 'onnx'"),
        ({"new_tokens": 1}, "new tokens"),
        ({"repeats": 0}, "repeats"),
        ({"meter": "wattmeter"}, "unknown meter"),
        ({"ppl_stride": 1024}, "stride"),
        ({"threads": 0}, "threads"),
        ({"version": 99}, "newer than this wattlm"),
        ({"dtype": "fp8"}, "unknown dtype 'fp8'"),
    ],
)
def test_invalid_values(kwargs, message):
    with pytest.raises(WattlmError, match=message):
        BenchConfig(**kwargs)


def test_unknown_keys_are_listed():
    with pytest.raises(
        WattlmError, match=r"unknown key\(s\) in bench config: batch_size.*valid keys"
    ):
        BenchConfig.from_dict({"batch_size": 1})
