"""Quality metrics measured on the same model whose energy is reported.

Perplexity uses the sliding-window method of the Hugging Face perplexity guide: windows of
``max_length`` tokens advance by ``stride``; each window scores only the tokens not scored
by the previous one, conditioned on up to ``max_length - stride`` tokens of left context.
Perplexity is ``exp(total negative log-likelihood / scored tokens)``.

The scorer is a torch model or any function from a window's token ids to next-token
log-probabilities (``[window, vocab]``), so a runtime other than torch (llama.cpp, ONNX
Runtime) is scored on its own outputs by the same windows.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import torch

from wattlm.errors import WattlmError

# (window token ids) -> next-token log-probabilities (or logits) [window, vocab]
LogProbsFn = Callable[[list[int]], torch.Tensor]


@dataclass(frozen=True)
class Perplexity:
    """A perplexity figure and exactly how it was computed."""

    value: float
    tokens: int
    max_length: int
    stride: int

    def to_dict(self) -> dict:
        return {"metric": "perplexity", **asdict(self)}


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Score with dropout off, then give the model back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def all_cores() -> Iterator[None]:
    """Run torch on every usable core, then give back the thread count it had: quality
    does not depend on threads, so scoring never runs at a measured configuration's
    (possibly single-thread) setting.

    Example:
        >>> before = torch.get_num_threads()
        >>> with all_cores():
        ...     pass
        >>> torch.get_num_threads() == before
        True
    """
    before = torch.get_num_threads()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.inference_mode()
def perplexity(
    model: torch.nn.Module | LogProbsFn,
    token_ids: Sequence[int],
    *,
    max_length: int = 512,
    stride: int = 256,
    on_window: Callable[[int, int], None] | None = None,
) -> Perplexity:
    """Sliding-window perplexity of a causal LM on ``token_ids``.

    Args:
        model: a causal LM returning ``.logits``, or a function from a window's token ids
            to its next-token log-probabilities ``[window, vocab]``.
        token_ids: the evaluation text, tokenized (the first token is only context).
        max_length: tokens per window (at most the model's context).
        stride: how far each window advances; ``stride == max_length`` means no overlap.
        on_window: called as ``on_window(done, total)`` after each window (progress).

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> lm = tiny_causal_lm()
        >>> ids = lm.tokenizer("The quick brown fox jumps over the lazy dog." * 8).input_ids
        >>> ppl = perplexity(lm.model, ids, max_length=32, stride=16)
        >>> ppl.tokens == len(ids) - 1
        True
    """
    if not 0 < stride <= max_length:
        raise WattlmError(f"stride must be in (0, max_length={max_length}], got {stride}")
    n = len(token_ids)
    if n < 2:
        raise WattlmError("perplexity needs at least 2 tokens of evaluation text")
    starts = list(range(0, max(n - max_length, 0) + stride, stride))
    if not isinstance(model, torch.nn.Module):
        ids = torch.as_tensor(list(token_ids), dtype=torch.long)
        return _windows(lambda w: model(w.tolist()), ids, starts, max_length, stride, on_window)
    device = next(model.parameters()).device
    ids = torch.as_tensor(list(token_ids), dtype=torch.long, device=device)
    with eval_mode(model):
        return _windows(
            lambda w: model(input_ids=w.unsqueeze(0)).logits[0],
            ids, starts, max_length, stride, on_window,
        )  # fmt: skip


def _windows(scores, ids, starts, max_length, stride, on_window) -> Perplexity:
    n = ids.numel()
    nll_sum, scored, prev_end = 0.0, 0, 0
    for i, begin in enumerate(starts):
        end = min(begin + max_length, n)
        window = ids[begin:end]
        logits = scores(window)[:-1].float().to(window.device)
        targets = window[1:]
        first_new = max(prev_end - begin, 0)  # position (in targets+1 space) of first new token
        keep = slice(max(first_new - 1, 0), None)
        losses = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum")
        nll_sum += float(losses)
        scored += targets[keep].numel()
        prev_end = end
        if on_window:
            on_window(i + 1, len(starts))
        if end == n:
            break
    return Perplexity(math.exp(nll_sum / scored), scored, max_length, stride)


@torch.inference_mode()
def accuracy(
    model: torch.nn.Module,
    tokenizer,
    examples: Sequence[tuple[str, int]],
    *,
    batch_size: int = 32,
    max_length: int = 128,
) -> float:
    """Fraction of ``(text, label)`` examples a sequence classifier labels correctly.

    Example:
        >>> from wattlm.testing.tiny import tiny_classifier
        >>> clf = tiny_classifier()
        >>> 0.0 <= accuracy(clf.model, clf.tokenizer, [("good", 1), ("bad", 0)]) <= 1.0
        True
    """
    if not examples:
        raise WattlmError("accuracy needs at least one labelled example")
    num_labels = model.config.num_labels
    bad = [y for _, y in examples if not 0 <= y < num_labels]
    if bad:
        raise WattlmError(f"label {bad[0]} outside the model's {num_labels} classes")
    device = next(model.parameters()).device
    with eval_mode(model):
        return _correct(model, tokenizer, examples, device, batch_size, max_length) / len(examples)


def _correct(model, tokenizer, examples, device, batch_size: int, max_length: int) -> int:
    correct = 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        enc = tokenizer(
            [t for t, _ in chunk],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        pred = model(**enc).logits.argmax(-1)
        correct += int((pred == torch.tensor([y for _, y in chunk], device=device)).sum())
    return correct
