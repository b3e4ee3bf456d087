"""Fidelity to the original model: KL divergence and top-1 agreement of next-token choices.

Perplexity on a few thousand tokens moves by less than its own noise for most compression
methods; the distance between the compressed model's next-token distribution and the
original's does not (llama.cpp's ``--kl-divergence`` is the anchor for this method). The
original's distribution is computed once on a fixed token set and kept (a *reference*);
every candidate is then scored against it:

- ``kl_mean``: mean over scored positions of KL(P_ref || P_candidate), in nats;
- ``kl_p99``: its 99th percentile (rare large deviations that a mean hides);
- ``top1_agreement``: the fraction of positions where both pick the same next token.

Token windows: the text is cut into non-overlapping windows of ``window`` tokens; in each,
the first ``context`` positions are only context and the rest are scored, so every scored
token sees at least ``context`` tokens of left context (as llama.cpp scores the second half
of each chunk). The candidate is any callable returning log-probabilities for a window, so
runtimes other than torch (llama.cpp, ONNX Runtime) are scored on their own logits.

Example:
    >>> from wattlm.testing.tiny import tiny_causal_lm
    >>> lm = tiny_causal_lm(seed=0)
    >>> ids = list(range(3, 67))
    >>> ref = reference_distribution(lm.model, ids, window=32, context=16)
    >>> ref.log_probs.shape[0]
    32
    >>> same = compare(ref, torch_log_probs(lm.model))
    >>> (same.kl_mean < 1e-4, same.top1_agreement)  # float16 storage: ~1e-5 nats floor
    (True, 1.0)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from wattlm.bench.quality import LogProbsFn, eval_mode
from wattlm.errors import WattlmError

__all__ = [
    "Fidelity",
    "PairedStop",
    "Reference",
    "SharedWindows",
    "compare",
    "load_reference",
    "paired_nll",
    "reference_distribution",
    "save_reference",
    "torch_log_probs",
]


@dataclass(frozen=True)
class Reference:
    """The original model's next-token log-probabilities on a fixed token set."""

    windows: tuple[tuple[int, ...], ...]
    context: int
    log_probs: torch.Tensor  # [scored positions, vocab], float16 to halve the cache

    @property
    def scored_tokens(self) -> int:
        return int(self.log_probs.shape[0])

    def within(self, token_ids: Sequence[int]) -> Reference:
        """The leading windows that lie inside ``token_ids`` (the reference's windows are
        consecutive chunks from the start of the same text), at least the first one: a
        runtime that scores ``token_ids`` for perplexity runs those windows anyway.

        Example:
            >>> ref = Reference(((1, 2), (3, 4)), 1, torch.zeros(2, 5))
            >>> ref.within([1, 2, 3]).windows, ref.within([1, 2, 3, 4]).windows
            (((1, 2),), ((1, 2), (3, 4)))
        """
        ids = tuple(int(t) for t in token_ids)
        k, start = 0, 0
        for window in self.windows:
            if ids[start : start + len(window)] != window:
                break
            k, start = k + 1, start + len(window)
        k = max(k, 1)
        scored = sum(len(w) - self.context for w in self.windows[:k])
        return Reference(self.windows[:k], self.context, self.log_probs[:scored])


@dataclass(frozen=True)
class Fidelity:
    """How close a candidate's next-token distribution is to the reference's."""

    kl_mean: float
    kl_p99: float
    top1_agreement: float
    tokens: int

    def to_dict(self) -> dict:
        return {"metric": "fidelity", **asdict(self)}


class PairedStop(Exception):
    """Raised by a :class:`SharedWindows` watch to end scoring early.

    ``ratio`` is the candidate's perplexity over the reference's on the scored tokens so far
    (a paired estimate: the same tokens, the same left context), ``tokens`` how many.
    """

    def __init__(self, ratio: float, tokens: int) -> None:
        super().__init__(f"perplexity ratio {ratio:.4f} on {tokens} tokens")
        self.ratio, self.tokens = ratio, tokens


#: ``watch(candidate_nll, reference_nll)``: per-token negative log-likelihoods of one
#: reference window's scored tokens, the candidate's and the original's (nats)
WindowWatch = Callable[[torch.Tensor, torch.Tensor], None]


def paired_nll(
    reference: Reference, index: int, log_probs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL of a candidate and of the original on reference window ``index``.

    ``log_probs`` is the candidate's output for the whole window. The scored positions are
    those after the context; the last one predicts a token outside the window, so a window
    of ``W`` tokens gives ``W - context - 1`` pairs.

    Example:
        >>> ref = Reference(((0, 1, 2, 3),), 1, torch.log(torch.full((3, 4), 0.25)))
        >>> cand, orig = paired_nll(ref, 0, torch.log(torch.full((4, 4), 0.25)))
        >>> cand.tolist() == orig.tolist(), len(cand)
        (True, 2)
    """
    window = reference.windows[index]
    scored = len(window) - reference.context
    offset = index * scored  # the reference's windows all have the same length
    targets = torch.tensor(window[reference.context + 1 :], dtype=torch.long).unsqueeze(1)
    ours = log_probs[reference.context : -1].float()
    theirs = reference.log_probs[offset : offset + scored - 1].float()
    return -ours.gather(1, targets).squeeze(1), -theirs.gather(1, targets).squeeze(1)


class SharedWindows:
    """A log-probability function that computes each of the reference's windows once.

    Perplexity and fidelity are scored by the same runtime: when a perplexity window is
    also one of ``reference``'s windows (same tokens: with the reference's windows a
    multiple of the perplexity stride, they coincide), its log-probabilities are kept
    until :func:`compare` asks for them, then handed over (and dropped), so the runtime
    runs that window once. Any other window goes straight to ``fn``.

    Example:
        >>> calls = []
        >>> def fn(window):
        ...     calls.append(tuple(window))
        ...     return torch.zeros(len(window), 4)
        >>> ref = Reference(((1, 2, 3, 4),), 2, torch.zeros(2, 4))
        >>> shared = SharedWindows(fn, ref)
        >>> _ = shared([1, 2, 3, 4]), shared([5, 6]), shared([1, 2, 3, 4])
        >>> calls
        [(1, 2, 3, 4), (5, 6)]
    """

    def __init__(
        self, fn: LogProbsFn, reference: Reference | None, watch: WindowWatch | None = None
    ) -> None:
        self.fn = fn
        self.reference = reference
        self.watch = watch
        self._index = {w: i for i, w in enumerate(reference.windows)} if reference else {}
        self._wanted = set(self._index)
        self._kept: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, window: Sequence[int]) -> torch.Tensor:
        key = tuple(int(t) for t in window)
        if key in self._kept:
            return self._kept.pop(key)
        out = self.fn(list(key))
        if key in self._wanted:
            self._wanted.discard(key)
            self._kept[key] = out
            if self.watch is not None and self.reference is not None:
                # may raise PairedStop: the watch has seen enough of this candidate
                self.watch(*paired_nll(self.reference, self._index[key], out))
        return out


def torch_log_probs(model: torch.nn.Module) -> LogProbsFn:
    """Log-probabilities of a torch causal LM, one window at a time, in eval mode.

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> fn = torch_log_probs(tiny_causal_lm().model)
        >>> tuple(fn([5, 6, 7]).shape)[0]
        3
    """

    @torch.inference_mode()
    def run(window: list[int]) -> torch.Tensor:
        device = next(model.parameters()).device
        ids = torch.tensor([window], dtype=torch.long, device=device)
        with eval_mode(model):
            logits = model(input_ids=ids).logits[0].float()
        return torch.log_softmax(logits, dim=-1).cpu()

    return run


def _cut(token_ids: Sequence[int], window: int, context: int, max_tokens: int | None):
    if not 0 <= context < window:
        raise WattlmError(f"context must be in [0, window={window}), got {context}")
    windows = []
    scored = 0
    for start in range(0, len(token_ids) - window + 1, window):
        windows.append(tuple(int(t) for t in token_ids[start : start + window]))
        scored += window - context
        if max_tokens is not None and scored >= max_tokens:
            break
    if not windows:
        raise WattlmError(
            f"fidelity needs at least {window} tokens of text, got {len(token_ids)}",
            hint="use a longer evaluation text or a smaller window",
        )
    return tuple(windows)


def reference_distribution(
    model: torch.nn.Module | LogProbsFn,
    token_ids: Sequence[int],
    *,
    window: int = 256,
    context: int = 128,
    max_tokens: int | None = 1024,
) -> Reference:
    """The original's next-token distribution on ``token_ids`` (compute once, then cache).

    ``max_tokens`` bounds the scored positions (the cache holds ``vocab`` float16 values per
    scored position: 1024 positions of a 49k-token vocabulary take 100 MB).
    """
    fn = torch_log_probs(model) if isinstance(model, torch.nn.Module) else model
    windows = _cut(token_ids, window, context, max_tokens)
    parts = [fn(list(w))[context:].to(torch.float16) for w in windows]
    return Reference(windows, context, torch.cat(parts))


def compare(reference: Reference, candidate: torch.nn.Module | LogProbsFn) -> Fidelity:
    """KL divergence and top-1 agreement of ``candidate`` against ``reference``."""
    fn = torch_log_probs(candidate) if isinstance(candidate, torch.nn.Module) else candidate
    kls, agree, offset = [], 0, 0
    for window in reference.windows:
        q = fn(list(window))[reference.context :].float()
        p = reference.log_probs[offset : offset + q.shape[0]].float()
        if p.shape != q.shape:
            raise WattlmError(
                f"candidate returns {tuple(q.shape)} log-probabilities, reference has "
                f"{tuple(p.shape)}",
                hint="the candidate must use the reference's tokenizer and vocabulary",
            )
        kls.append((p.exp() * (p - q)).sum(-1).clamp_min(0.0))
        agree += int((p.argmax(-1) == q.argmax(-1)).sum())
        offset += q.shape[0]
    kl = torch.cat(kls)
    return Fidelity(
        kl_mean=float(kl.mean()),
        kl_p99=float(torch.quantile(kl, 0.99)),
        top1_agreement=agree / kl.numel(),
        tokens=int(kl.numel()),
    )


def save_reference(reference: Reference, path: str | Path) -> Path:
    """Write ``reference`` as safetensors (never pickle), atomically: a half-written cache
    entry is never read.

    Example:
        >>> import tempfile
        >>> ref = Reference(((1, 2, 3),), 1, torch.zeros(2, 5, dtype=torch.float16))
        >>> p = save_reference(ref, Path(tempfile.mkdtemp()) / "ref.safetensors")
        >>> load_reference(p).windows
        ((1, 2, 3),)
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"windows": json.dumps(reference.windows), "context": str(reference.context)}
    tmp = path.with_name(path.name + ".partial")
    save_file({"log_probs": reference.log_probs.contiguous()}, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_reference(path: str | Path) -> Reference:
    """Read a reference written by :func:`save_reference`; a corrupt file is one clear error."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            log_probs = f.get_tensor("log_probs")
        windows = tuple(tuple(int(t) for t in w) for w in json.loads(meta["windows"]))
        context = int(meta["context"])
    except Exception as err:  # safetensors raises several types for a damaged file
        raise WattlmError(
            f"cannot read the fidelity reference {path}: {err}",
            hint="delete it; it is recomputed from the baseline model",
        ) from err
    return Reference(windows, context, log_probs)
