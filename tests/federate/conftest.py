"""A tiny classifier saved to disk and a small labelled folder, for federated runs."""

from __future__ import annotations

import json

import pytest

from wattlm.testing.tiny import TRAINING_TEXT, tiny_causal_lm, tiny_classifier

POSITIVE = ["good", "great", "fine", "nice", "lovely"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring"]


@pytest.fixture(scope="session")
def tiny_setup(tmp_path_factory):
    """``(model_dir, data_dir)``: a 2-layer BERT classifier and train/validation/test.jsonl."""
    root = tmp_path_factory.mktemp("fed")
    lm = tiny_classifier()
    lm.model.save_pretrained(root / "model")
    lm.tokenizer.save_pretrained(root / "model")
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 40), ("validation", 8), ("test", 16)):
        with (data / f"{split}.jsonl").open("w", encoding="utf-8") as fh:
            for i in range(n):
                y = i % 2
                word = (POSITIVE if y else NEGATIVE)[i % 5]
                fh.write(json.dumps({"text": f"a {word} film {i}", "label": y}) + "\n")
    return root / "model", data


@pytest.fixture(scope="session")
def tiny_text_setup(tmp_path_factory):
    """``(model_dir, data_dir)``: a 2-layer Llama and a folder of articles per split."""
    root = tmp_path_factory.mktemp("fedtext")
    lm = tiny_causal_lm()
    lm.model.save_pretrained(root / "model")
    lm.tokenizer.save_pretrained(root / "model")
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 8), ("validation", 2), ("test", 2)):
        articles = [f"Article {i}. " + TRAINING_TEXT for i in range(n)]
        (data / f"{split}.txt").write_text("\n\n".join(articles), encoding="utf-8")
    return root / "model", data


@pytest.fixture(scope="session")
def fed_config():
    """``fed_config(setup, **kw)``: a :class:`~wattlm.federate.config.FederateConfig` on a
    ``(model_dir, data_dir)`` setup with small unit-test settings, ``kw`` over them."""
    from wattlm.federate.config import FederateConfig

    def make(setup, **kw) -> FederateConfig:
        model, data = setup
        base = dict(
            model=str(model), data=str(data), lr=1e-3, batch_size=8, seq_len=16, meter="estimate"
        )
        return FederateConfig(**{**base, **kw})

    return make
