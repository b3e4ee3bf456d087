"""What one party computes: load the model and its data, train locally (with the FedProx
proximal term when ``mu > 0``), and evaluate.

Used by every client, by the server (initial model, evaluation) and by the centralised
comparison, so all three train and score exactly the same way.

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
from typing import Any

import numpy as np
import torch

from wattlm.errors import WattlmError
from wattlm.federate.config import FederateConfig
from wattlm.federate.partition import partition_indices

Arrays = dict[str, np.ndarray]


def load_global_model(config: FederateConfig):
    """The model every party starts from: ``config.model`` with a classification head
    seeded by ``config.seed`` (so every process builds the same one)."""
    from wattlm.models.load import load_model

    torch.manual_seed(config.seed)
    lm = load_model(config.model, task="sequence-classification", num_labels=2)
    if lm.tokenizer.pad_token is None:
        lm.tokenizer.pad_token = lm.tokenizer.eos_token
    if config.lora:
        from wattlm.federate.lora import add_lora

        add_lora(lm, config)
    return lm


@functools.lru_cache(maxsize=4)
def train_rows_all(data: str, max_samples: int | None) -> tuple[tuple[str, int], ...]:
    """The training split (spread to ``max_samples`` rows), cached per process."""
    from wattlm.data.labelled import load_labelled
    from wattlm.training.data import spread

    return tuple(spread(load_labelled(data, "train"), max_samples))


def client_rows(config: FederateConfig, partition: int) -> list[tuple[str, int]]:
    """The training rows of client ``partition`` (deterministic in every process)."""
    return [r for _, r in client_parts(config)[partition]]


def client_parts(config: FederateConfig) -> list[list[tuple[int, tuple[str, int]]]]:
    """Every client's ``(row index, row)`` pairs."""
    rows = train_rows_all(config.data, config.max_train_samples)
    parts = partition_indices(
        [y for _, y in rows], clients=config.clients, alpha=config.alpha, seed=config.seed
    )
    return [[(i, rows[i]) for i in part] for part in parts]


@functools.lru_cache(maxsize=4)
def eval_rows(data: str, split: str, max_samples: int | None) -> tuple[tuple[str, int], ...]:
    """The held-out rows quality is measured on."""
    from wattlm.data.labelled import load_labelled
    from wattlm.training.data import spread

    return tuple(spread(load_labelled(data, split), max_samples))


def trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters that train and travel (all of them, or only LoRA adapters)."""
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


def train_rows(
    lm,
    rows: list[tuple[str, int]],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seq_len: int,
    seed: int,
    max_steps: int | None = None,
    mu: float = 0.0,
) -> dict[str, Any]:
    """Train ``lm`` on ``rows`` with AdamW (fresh each call, as each round's local
    optimiser is); ``mu > 0`` adds FedProx's ``mu/2 · ||w − w_start||²``.

    Returns ``samples`` (rows seen, counting repeats), ``steps`` and the mean ``loss``.
    """
    from wattlm.training.data import LabelledData

    model = lm.model
    data = LabelledData(list(rows), lm.tokenizer, seq_len)
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


def evaluate_rows(lm, rows: tuple[tuple[str, int], ...], seq_len: int) -> float:
    """Accuracy of ``lm`` on ``rows``."""
    from wattlm.bench.quality import accuracy

    return accuracy(lm.model, lm.tokenizer, list(rows), max_length=seq_len)
