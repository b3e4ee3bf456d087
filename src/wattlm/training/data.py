"""Training data: labelled sentences for classifiers, fixed-length text chunks for causal LMs,
and the one deterministic batch order (shared by single-process and data-parallel runs).

Order: each epoch is a permutation seeded by ``seed + epoch``
(:class:`torch.utils.data.DistributedSampler`); process ``r`` of ``w`` takes every w-th
index starting at ``r``; micro-batches are consecutive runs of ``batch_size`` of those; an
optimizer step consumes ``grad_accum`` micro-batches. So ``w`` processes at batch ``b``
see exactly the samples one process sees at batch ``w·b``, and a resumed run can skip to
any step without reading what it skips.

Example:
    >>> data = TextChunks(list(range(100)), seq_len=10)
    >>> len(data), data.collate([0, 3]).inputs["input_ids"][1, :3].tolist()
    (10, [30, 31, 32])
    >>> plan = step_plan(len(data), batch_size=2, grad_accum=2, epoch=0, seed=0)
    >>> len(plan), [len(mb) for mb in plan[0]]
    (2, [2, 2])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from wattlm.data.labelled import labelled_assets, load_labelled
from wattlm.data.text import load_text, text_assets
from wattlm.errors import WattlmError

LABELLED, TEXT = "labelled", "text"


@dataclass
class Batch:
    """One micro-batch: model inputs and how much work it holds."""

    inputs: dict[str, torch.Tensor]
    samples: int
    tokens: int

    def to(self, device: str | torch.device) -> Batch:
        return Batch({k: v.to(device) for k, v in self.inputs.items()}, self.samples, self.tokens)


class LabelledData:
    """``(text, label)`` rows, tokenized per micro-batch (padded to its longest row)."""

    task = "sequence-classification"

    def __init__(self, rows: list[tuple[str, int]], tokenizer, seq_len: int) -> None:
        if not rows:
            raise WattlmError("the training split has no labelled rows")
        self.texts = [t for t, _ in rows]
        self.labels = [y for _, y in rows]
        self.tokenizer = tokenizer
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return max(self.labels) + 1

    def lengths(self) -> list[int]:
        """Tokens of each row after truncation (computed once; length-bucketed batching)."""
        if getattr(self, "_lengths", None) is None:
            enc = self.tokenizer(self.texts, truncation=True, max_length=self.seq_len)
            self._lengths = [len(ids) for ids in enc["input_ids"]]
        return self._lengths

    def collate(self, indices: list[int]) -> Batch:
        enc = self.tokenizer(
            [self.texts[i] for i in indices],
            padding=True,
            truncation=True,
            max_length=self.seq_len,
            return_tensors="pt",
        )
        inputs = dict(enc)
        inputs["labels"] = torch.tensor([self.labels[i] for i in indices])
        return Batch(inputs, len(indices), int(enc["attention_mask"].sum()))


class TextChunks:
    """Token ids cut into non-overlapping chunks of ``seq_len``; labels are the inputs (the
    model shifts them), every token scored."""

    task = "causal-lm"

    def __init__(self, ids: list[int], seq_len: int) -> None:
        n = len(ids) // seq_len
        if n < 1:
            raise WattlmError(
                f"the training text has {len(ids)} tokens, fewer than one chunk of {seq_len}",
                hint="give more text or a smaller --seq-len",
            )
        self.chunks = torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return self.chunks.shape[0]

    def collate(self, indices: list[int]) -> Batch:
        ids = self.chunks[indices]
        return Batch({"input_ids": ids, "labels": ids.clone()}, len(indices), ids.numel())


def data_kind(spec: str) -> str:
    """``"labelled"`` or ``"text"``: what kind of data ``spec`` names."""
    if spec in labelled_assets():
        return LABELLED
    if spec in text_assets():
        return TEXT
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "train.jsonl").is_file():
            return LABELLED
        if (path / "train.txt").is_file():
            return TEXT
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".tsv"):
        return LABELLED
    if suffix == ".txt":
        return TEXT
    if not path.exists():
        raise WattlmError(
            f"no such data set or file: {spec}",
            hint=f"use one of {', '.join(labelled_assets() + text_assets())}, "
            "a .jsonl/.tsv labelled file or a .txt file",
        )
    raise WattlmError(f"{spec}: want a .jsonl/.tsv labelled file or a .txt text file")


def check_labels(rows: list[tuple[str, int]], num_labels: int, where: str) -> None:
    """Every label of ``rows`` is a class of a ``num_labels``-way classifier."""
    bad = sorted({y for _, y in rows if not 0 <= y < num_labels})
    if bad:
        raise WattlmError(
            f"label count mismatch: {where} has label(s) {bad[:5]} but the model has "
            f"{num_labels} classes (0..{num_labels - 1})",
            hint="train a new head (a model without one) or fix the labels",
        )


def tokenize_text(tokenizer, text: str) -> list[int]:
    """Token ids of a whole corpus split (no length warning: it is chunked afterwards)."""
    return tokenizer(text, verbose=False).input_ids


def spread(items: list, n: int | None) -> list:
    """``n`` items evenly spaced over ``items`` (all of them when ``n`` is None or larger).

    A prefix would be biased when a file is ordered (the movie-review test split opens with
    61 positive sentences in its first 64).

    Example:
        >>> spread(list(range(10)), 4)
        [0, 2, 5, 7]
    """
    if n is None or n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def build_train_data(kind: str, spec: str, tokenizer, seq_len: int, limit: int | None):
    """The training split of ``spec`` as :class:`LabelledData` or :class:`TextChunks`;
    ``limit`` keeps that many samples spread evenly over the split."""
    if kind == LABELLED:
        return LabelledData(spread(load_labelled(spec, "train"), limit), tokenizer, seq_len)

    data = TextChunks(tokenize_text(tokenizer, load_text(spec, "train")), seq_len)
    if limit and limit < len(data):
        data.chunks = data.chunks[spread(list(range(len(data))), limit)]
    return data


def steps_per_epoch(n: int, batch_size: int, grad_accum: int, world_size: int = 1) -> int:
    """Optimizer steps in one pass: incomplete micro-batches and groups are dropped."""
    per_rank = n // world_size
    return (per_rank // batch_size) // grad_accum


def step_plan(
    n: int,
    *,
    batch_size: int,
    grad_accum: int,
    epoch: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
) -> list[list[list[int]]]:
    """Sample indices of every optimizer step of ``epoch`` for process ``rank``:
    ``plan[step][micro_batch] -> indices``."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    order = list(sampler)
    micro = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    steps = len(micro) // grad_accum
    return [micro[s * grad_accum : (s + 1) * grad_accum] for s in range(steps)]


def bucket_plan(
    plan: list[list[list[int]]], lengths: list[int], *, seed: int, epoch: int, window: int = 32
) -> list[list[list[int]]]:
    """Length-bucketed batches: the same samples and step count as ``plan``, but each
    run of ``window`` micro-batches is sorted by length before it is cut into micro-batches,
    and the micro-batches are then shuffled (seeded by ``seed`` and ``epoch``, so a resumed
    run sees the same order). Less padding per micro-batch; every sample still once.

    Example:
        >>> plan = [[[0, 1]], [[2, 3]]]
        >>> out = bucket_plan(plan, [5, 1, 4, 2], seed=0, epoch=0)
        >>> sorted(sorted(mb) for step in out for mb in step)
        [[0, 2], [1, 3]]
    """
    if not plan:
        return plan
    batch, accum = len(plan[0][0]), len(plan[0])
    flat = [i for step in plan for mb in step for i in mb]
    size = batch * window
    micro = []
    for start in range(0, len(flat), size):
        chunk = sorted(flat[start : start + size], key=lambda i: (lengths[i], i))
        micro += [chunk[j : j + batch] for j in range(0, len(chunk), batch)]
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    micro = [micro[k] for k in torch.randperm(len(micro), generator=generator).tolist()]
    return [micro[s * accum : (s + 1) * accum] for s in range(len(plan))]
