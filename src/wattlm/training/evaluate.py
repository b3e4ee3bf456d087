"""Quality before and after training, and inference speed and energy of a classifier.

Quality uses :mod:`wattlm.bench.quality` on the held-out split: accuracy for classifiers,
sliding-window perplexity for causal LMs (window ``eval_max_length`` clipped to the model's
context, stride half of it), in the result format's ``quality`` shape.

Example:
    >>> from wattlm.testing.tiny import tiny_classifier
    >>> from wattlm.training.options import DataConfig
    >>> clf = tiny_classifier()
    >>> q = evaluate(clf, EvalSet(DataConfig("x.jsonl"), rows=[("good", 1), ("bad", 0)]))
    >>> (q["metric"], q["samples"])
    ('accuracy', 2)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from wattlm.bench.quality import accuracy, perplexity
from wattlm.data.labelled import load_labelled
from wattlm.data.text import load_text
from wattlm.models.load import LoadedModel
from wattlm.training.data import LABELLED, check_labels, spread, tokenize_text
from wattlm.training.options import DataConfig


@dataclass
class EvalSet:
    """The held-out data: labelled ``rows`` or token ``ids`` (one of them)."""

    config: DataConfig
    rows: list[tuple[str, int]] | None = None
    ids: list[int] | None = None


def load_eval_set(config: DataConfig, kind: str, tokenizer) -> EvalSet:
    """The ``eval_split`` of the data, cut to ``eval_max_samples`` / ``eval_max_tokens``."""
    if kind == LABELLED:
        rows = load_labelled(config.data, config.eval_split)
        return EvalSet(config, rows=spread(rows, config.eval_max_samples))

    ids = tokenize_text(tokenizer, load_text(config.data, config.eval_split))
    return EvalSet(config, ids=ids[: config.eval_max_tokens])


def _dtype(model: torch.nn.Module) -> str:
    for p in model.parameters():
        if p.is_floating_point():
            return str(p.dtype).removeprefix("torch.")
    return "unknown"


def evaluate(lm: LoadedModel, data: EvalSet) -> dict[str, Any]:
    """Quality of ``lm`` on ``data`` (model put in eval mode, its mode restored after)."""
    model, was_training = lm.model, lm.model.training
    model.eval()
    common = {"data": data.config.data, "split": data.config.eval_split, "backend": "torch"}
    try:
        if data.rows is not None:
            check_labels(data.rows, model.config.num_labels, f"the {data.config.eval_split} split")
            value = accuracy(model, lm.tokenizer, data.rows, max_length=data.config.seq_len)
            return {
                "metric": "accuracy",
                "value": value,
                **common,
                "dtype": _dtype(model),
                "samples": len(data.rows),
            }
        window = min(data.config.eval_max_length, lm.context_length or data.config.eval_max_length)
        window = min(window, len(data.ids))
        ppl = perplexity(model, data.ids, max_length=window, stride=max(window // 2, 1))
        return {**ppl.to_dict(), **common, "dtype": _dtype(model)}
    finally:
        model.train(was_training)


@torch.inference_mode()
def classify_energy(
    lm: LoadedModel,
    texts: list[str],
    *,
    meter,
    batch_size: int = 32,
    max_length: int = 128,
    warmup_batches: int = 1,
) -> dict[str, Any]:
    """Time and energy of classifying ``texts`` (after ``warmup_batches`` unmeasured).

    Returns ``samples_per_s``, ``joules_per_1000_samples`` (``None`` without a figure),
    ``energy_source``, ``time_s`` and ``samples``.
    """
    model = lm.model.eval()
    device = next(model.parameters()).device
    batches = [
        lm.tokenizer(
            texts[i : i + batch_size],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        for i in range(0, len(texts), batch_size)
    ]
    for enc in batches[:warmup_batches]:
        model(**enc)
    meter.begin_window("classify")
    start = time.perf_counter()
    for enc in batches:
        model(**enc)
    wall = time.perf_counter() - start
    m = meter.end_window("classify")
    per_1000 = None if m.energy_j is None else m.energy_j / len(texts) * 1000
    return {
        "samples": len(texts),
        "time_s": wall,
        "samples_per_s": len(texts) / wall if wall > 0 else None,
        "joules_per_1000_samples": per_1000,
        "energy_source": m.source,
    }
