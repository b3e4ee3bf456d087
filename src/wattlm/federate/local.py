"""What one party computes: load the model and its data, train locally (with the FedProx
proximal term when ``mu > 0``), and evaluate.

Two tasks, chosen by the data: a classifier on labelled sentences (``movie-sentiment``,
accuracy) or a causal LM on text (``wiki-sample``, perplexity; clients get whole
articles). Used by every client, by the server (initial model, evaluation) and by the
centralised comparison, so all three train and score exactly the same way.

Example:
    >>> from wattlm.testing.tiny import tiny_classifier
    >>> lm = tiny_classifier()
    >>> rows = [("good film", 1), ("bad film", 0)] * 4
    >>> stats = train_rows(lm, rows, epochs=1, lr=1e-3, batch_size=4, seq_len=16, seed=0)
    >>> (stats["samples"], stats["steps"])
    (8, 2)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wattlm.errors import WattlmError
from wattlm.federate.config import FederateConfig
from wattlm.federate.partition import partition_indices

Arrays = dict[str, np.ndarray]
CLASSIFIER, CAUSAL_LM = "sequence-classification", "causal-lm"


def task_of(config: FederateConfig) -> str:
    """``sequence-classification`` for labelled data, ``causal-lm`` for text."""
    from wattlm.training.data import TEXT, data_kind

    return CAUSAL_LM if data_kind(config.data) == TEXT else CLASSIFIER


def load_global_model(config: FederateConfig):
    """The model every party starts from: ``config.model`` (a classifier gets a 2-class head
    seeded by ``config.seed``, so every process builds the same one), with LoRA adapters
    when ``config.lora``."""
    from wattlm.models.load import load_model

    task = task_of(config)
    torch.manual_seed(config.seed)
    if task == CLASSIFIER:
        lm = load_model(config.model, task=task, num_labels=2)
    else:
        lm = load_model(config.model, task=task)
    if lm.tokenizer.pad_token is None:
        lm.tokenizer.pad_token = lm.tokenizer.eos_token
    if config.lora:
        from wattlm.federate.lora import add_lora

        add_lora(lm, config, task)
    return lm


@functools.lru_cache(maxsize=4)
def _units(data: str, task: str, max_samples: int | None) -> tuple:
    """The training split's units: ``(text, label)`` rows, or articles of a text."""
    from wattlm.training.data import spread

    if task == CLASSIFIER:
        from wattlm.data.labelled import load_labelled

        return tuple(spread(load_labelled(data, "train"), max_samples))
    from wattlm.data.text import load_text

    articles = [a for a in load_text(data, "train").split("\n\n") if a.strip()]
    return tuple(spread(articles, max_samples))


def client_units(config: FederateConfig) -> list[list]:
    """Every client's units (rows or whole articles), deterministic in every process."""
    task = task_of(config)
    units = _units(config.data, task, config.max_train_samples)
    labels = [u[1] for u in units] if task == CLASSIFIER else [0] * len(units)
    if task == CAUSAL_LM and config.alpha is not None:
        raise WattlmError(
            "--alpha skews labels; text has none (clients get whole articles, IID)",
            hint="leave --alpha out for text data",
        )
    parts = partition_indices(labels, clients=config.clients, alpha=config.alpha, seed=config.seed)
    return [[units[i] for i in part] for part in parts]


def as_data(units: list, tokenizer, task: str, seq_len: int):
    """Training data of ``units``: labelled rows, or the articles' tokens in chunks."""
    from wattlm.training.data import LabelledData, TextChunks, tokenize_text

    if task == CLASSIFIER:
        return LabelledData(list(units), tokenizer, seq_len)
    return TextChunks(tokenize_text(tokenizer, "\n\n".join(units)), seq_len)


@dataclass(frozen=True)
class HeldOut:
    """The evaluation data: labelled ``rows`` or token ``ids``."""

    split: str
    rows: tuple | None = None
    ids: tuple | None = None


@functools.lru_cache(maxsize=4)
def _held_out(data: str, task: str, split: str, limit: int | None, tok) -> HeldOut:
    from wattlm.training.data import spread

    if task == CLASSIFIER:
        from wattlm.data.labelled import load_labelled

        return HeldOut(split, rows=tuple(spread(load_labelled(data, split), limit)))
    from wattlm.data.text import load_text
    from wattlm.training.data import tokenize_text

    return HeldOut(split, ids=tuple(tokenize_text(tok, load_text(data, split))[: limit or 4096]))


def held_out(config: FederateConfig, tokenizer) -> HeldOut:
    """The held-out split quality is measured on (``eval_max_samples`` rows, or tokens)."""
    return _held_out(
        config.data, task_of(config), config.eval_split, config.eval_max_samples, tokenizer
    )


def higher_is_better(metric: str) -> bool:
    """Accuracy rises, perplexity falls."""
    return metric != "perplexity"


def evaluate(lm, data: HeldOut, seq_len: int) -> dict[str, Any]:
    """Quality of ``lm``: accuracy on the rows, or perplexity (windows of ``2·seq_len``,
    stride ``seq_len``) on the tokens."""
    from wattlm.bench.quality import accuracy, perplexity

    if data.rows is not None:
        value = accuracy(lm.model, lm.tokenizer, list(data.rows), max_length=seq_len)
        return {
            "metric": "accuracy",
            "value": value,
            "samples": len(data.rows),
            "split": data.split,
        }
    window = min(2 * seq_len, len(data.ids))
    ppl = perplexity(lm.model, list(data.ids), max_length=window, stride=max(window // 2, 1))
    return {"metric": "perplexity", "value": ppl.value, "samples": ppl.tokens, "split": data.split}


def trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters that train and travel (all of them, or only LoRA adapters and head)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def get_arrays(model: torch.nn.Module) -> Arrays:
    """The travelling parameters as float32 numpy arrays (copies)."""
    return {n: p.detach().to(torch.float32).cpu().numpy().copy() for n, p in trainable(model)}


def set_arrays(model: torch.nn.Module, arrays: Arrays) -> None:
    """Load travelling parameters into ``model`` (keys and shapes must match)."""
    params = dict(trainable(model))
    if set(params) != set(arrays):
        raise WattlmError("received weights do not match the model's parameters")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(torch.from_numpy(np.asarray(arrays[n])).to(p.dtype))


def train_data(
    lm,
    data,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    max_steps: int | None = None,
    mu: float = 0.0,
) -> dict[str, Any]:
    """Train ``lm`` on ``data`` (anything with ``len`` and ``collate``) with AdamW, fresh
    each call as each round's local optimiser is; ``mu > 0`` adds FedProx's
    ``mu/2 · ||w − w_start||²``.

    Returns ``samples`` (units seen, counting repeats), ``steps`` and the mean ``loss``.
    """
    model = lm.model
    params = [p for _, p in trainable(model)]
    start = [p.detach().clone() for p in params] if mu > 0 else None
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    steps = samples = 0
    loss_sum = 0.0
    limit = max_steps if max_steps is not None else math.inf
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=gen).tolist()
        for i in range(0, len(order), batch_size):
            if steps >= limit:
                break
            batch = data.collate(order[i : i + batch_size])
            loss = model(**batch.inputs).loss
            if start is not None:
                prox = sum(((p - s) ** 2).sum() for p, s in zip(params, start, strict=True))
                loss = loss + mu / 2 * prox
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            samples += batch.samples
            loss_sum += float(loss.detach())
    model.eval()
    return {"samples": samples, "steps": steps, "loss": loss_sum / steps if steps else None}


def train_rows(lm, rows: list[tuple[str, int]], *, seq_len: int, **kw: Any) -> dict[str, Any]:
    """:func:`train_data` on labelled ``rows``."""
    return train_data(lm, as_data(rows, lm.tokenizer, CLASSIFIER, seq_len), **kw)
