"""Optimizer, learning-rate schedule and mixed precision, built from :class:`TrainOptions`.

Example:
    >>> import torch
    >>> from wattlm.training.options import TrainOptions
    >>> model = torch.nn.Linear(4, 2)
    >>> opts = TrainOptions(optimizer="sgd", lr=0.1, max_steps=10, warmup_steps=2)
    >>> opt = build_optimizer(model.named_parameters(), opts)
    >>> sched = build_schedule(opt, opts, total_steps=10)
    >>> [round(warmup_decay(s, 10, 2, "linear"), 3) for s in (0, 1, 2, 6, 10)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from wattlm.errors import WattlmError
from wattlm.training.options import TrainOptions

#: parameters never decayed: biases and normalisation weights (1-D tensors)
_NO_DECAY_NDIM = 1


def check_environment(options: TrainOptions, device: str) -> None:
    """Fail before any work when an option cannot run on this machine."""
    cuda = device.startswith("cuda")
    if options.device.startswith("cuda") and not torch.cuda.is_available():
        raise WattlmError(
            "device cuda requested but CUDA is not available", hint="use --device cpu"
        )
    if options.precision == "fp16" and not cuda:
        raise WattlmError(
            "fp16 training needs a CUDA GPU (a gradient scaler on GPU)",
            hint="use --precision bf16 on CPU",
        )
    if options.optimizer == "adamw8bit":
        if not cuda:
            raise WattlmError(
                "adamw8bit (bitsandbytes) needs a CUDA GPU", hint="use --optimizer adamw on CPU"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise WattlmError(
                "adamw8bit needs the bitsandbytes package", hint="pip install bitsandbytes"
            )


def param_groups(
    named: Iterable[tuple[str, torch.nn.Parameter]], weight_decay: float
) -> list[dict]:
    """Two groups: matrices with ``weight_decay``; biases and norms without."""
    decay, no_decay = [], []
    for _name, p in named:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= _NO_DECAY_NDIM else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if not decay and not no_decay:
        raise WattlmError("the model has no trainable parameters")
    return groups


def build_optimizer(
    named: Iterable[tuple[str, torch.nn.Parameter]], options: TrainOptions
) -> torch.optim.Optimizer:
    """The optimizer ``options.optimizer`` over the trainable parameters."""
    groups = param_groups(named, options.weight_decay)
    if options.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=options.lr)
    if options.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=options.lr, momentum=options.momentum)
    if options.optimizer == "adagrad":
        return torch.optim.Adagrad(groups, lr=options.lr)
    if options.optimizer == "adafactor":
        return torch.optim.Adafactor(groups, lr=options.lr)
    import bitsandbytes as bnb  # adamw8bit; check_environment ran first

    return bnb.optim.AdamW8bit(groups, lr=options.lr)


def warmup_decay(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then the decay."""
    if warmup and step < warmup:
        return step / warmup
    if schedule == "constant":
        return 1.0
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class _Multiplier:
    """Picklable schedule function (a lambda would be dropped from the state dict)."""

    total: int
    warmup: int
    schedule: str

    def __call__(self, step: int) -> float:
        return warmup_decay(step, self.total, self.warmup, self.schedule)


def build_schedule(
    optimizer: torch.optim.Optimizer, options: TrainOptions, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up plus ``options.schedule`` over ``total_steps`` optimizer steps."""
    fn = _Multiplier(total_steps, options.warmup_steps, options.schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


@dataclass
class Precision:
    """Autocast context and (fp16 only) gradient scaler for one run."""

    name: str
    device_type: str
    scaler: torch.amp.GradScaler | None = None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.name == "fp32":
            yield
            return
        dtype = torch.bfloat16 if self.name == "bf16" else torch.float16
        with torch.autocast(device_type=self.device_type, dtype=dtype):
            yield


def make_precision(options: TrainOptions, device: str) -> Precision:
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    scaler = torch.amp.GradScaler("cuda") if options.precision == "fp16" else None
    return Precision(options.precision, device_type, scaler)
