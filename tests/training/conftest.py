"""Tiny models and data for training tests (engine and recipes): nothing is downloaded."""

from __future__ import annotations

import json

import pytest

from wattlm.testing.tiny import tiny_causal_lm, tiny_classifier
from wattlm.training.options import DataConfig, TrainOptions

POSITIVE = ("the quick brown fox jumps", "energy is measured in joules", "a quick model")
NEGATIVE = ("the lazy dog", "perplexity of the lazy model", "power in watts is lazy")


def toy_rows(n: int = 240) -> list[dict]:
    """A labelled set the tiny models can learn: the label follows the words used."""
    rows = []
    for i in range(n):
        label = i % 2
        words = (POSITIVE if label else NEGATIVE)[i % 3]
        rows.append({"text": f"{words} {i % 7}", "label": label})
    return rows


def write_jsonl(path, rows) -> str:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


@pytest.fixture
def text_file(tmp_path):
    """A short local corpus (overrides the suite-wide one: fewer tokens, faster tests)."""
    path = tmp_path / "notes.txt"
    path.write_text(
        "\n\n".join(
            f"Paragraph {i}. The quick brown fox jumps over the lazy dog." * 2 for i in range(60)
        )
    )
    return path


@pytest.fixture
def labelled_file(tmp_path):
    return write_jsonl(tmp_path / "toy.jsonl", toy_rows())


def no_dropout(lm):
    """Turn dropout off so runs can be compared number for number."""
    for module in lm.model.modules():
        if type(module).__name__ == "Dropout":
            module.p = 0.0
    return lm


@pytest.fixture
def clf():
    return tiny_classifier()


@pytest.fixture
def lm():
    return tiny_causal_lm()


def opts(**kw) -> TrainOptions:
    """Fast options: a few steps, small batches, no terminal lines, the null meter."""
    base = {"max_steps": 3, "batch_size": 4, "lr": 1e-3, "log_every": 1000, "meter": "null"}
    return TrainOptions(**{**base, **kw})


def data_cfg(data: str, **kw) -> DataConfig:
    base = {"seq_len": 32, "eval_max_samples": 16, "eval_max_tokens": 256, "eval_max_length": 64}
    return DataConfig(data, **{**base, **kw})
