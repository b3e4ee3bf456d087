"""Configs validate themselves and round-trip through JSON."""

import json

import pytest

from wattlm.errors import WattlmError
from wattlm.train.config import (
    DistillConfig,
    FinetuneConfig,
    QatConfig,
    config_from_dict,
)
from wattlm.training.options import DataConfig, TrainOptions


@pytest.mark.parametrize(
    "cfg",
    [
        TrainOptions(),
        TrainOptions(optimizer="sgd", schedule="cosine", precision="bf16", max_time_s=60.0),
        DataConfig("wiki-sample", seq_len=256, max_train_samples=100),
    ],
)
def test_options_round_trip(cfg):
    again = type(cfg).from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize(
    "cfg",
    [
        FinetuneConfig(model="m", keep_sparsity=True, options=TrainOptions(grad_accum=4)),
        DistillConfig(teacher="t", student="layers:0,2", hidden_weight=0.5),
        DistillConfig(teacher="t", student="drop-layers:0.33", data=DataConfig("wiki-sample")),
        QatConfig(model="m", scheme="int8-dynamic", skip=("lm_head",), backend="wattlm"),
    ],
)
def test_every_recipe_config_round_trips(cfg):
    text = json.dumps(cfg.to_dict())
    assert config_from_dict(json.loads(text)) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0}, "lr must be > 0"),
        ({"epochs": None, "max_steps": None}, "give epochs or max_steps"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"grad_accum": 1.5}, "grad_accum must be an integer"),
        ({"optimizer": "lion"}, "unknown optimizer"),
        ({"precision": "fp8"}, "unknown precision"),
        ({"schedule": "step"}, "unknown schedule"),
        ({"max_grad_norm": 0}, "max_grad_norm must be > 0"),
        ({"device": "tpu"}, "unknown device"),
        ({"momentum": 1.0}, "momentum must be in"),
    ],
)
def test_bad_options_fail_with_clear_errors(kwargs, match):
    with pytest.raises(WattlmError, match=match):
        TrainOptions(**kwargs)


def test_bad_data_and_recipe_configs():
    with pytest.raises(WattlmError, match="held-out split"):
        DataConfig(eval_split="train")
    with pytest.raises(WattlmError, match="alpha must be in"):
        DistillConfig(alpha=2)
    with pytest.raises(WattlmError, match="temperature must be > 0"):
        DistillConfig(temperature=0)
    with pytest.raises(WattlmError, match="bad student spec"):
        DistillConfig(student="layers:x")
    with pytest.raises(WattlmError, match="unknown QAT scheme"):
        QatConfig(scheme="int3")


def test_unknown_keys_and_wrong_recipe_are_errors():
    data = FinetuneConfig().to_dict()
    with pytest.raises(WattlmError, match="unknown key"):
        config_from_dict({**data, "learning_rate": 1})
    with pytest.raises(WattlmError, match="unknown training recipe"):
        config_from_dict({**data, "recipe": "pretrain"})
    with pytest.raises(WattlmError, match="unknown key"):
        config_from_dict({**data, "options": {"lr": 1e-4, "nope": 1}})
