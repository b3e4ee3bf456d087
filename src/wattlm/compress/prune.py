"""Unstructured pruning: magnitude (one-shot or iterative, optional masked fine-tune) and Wanda.

Weights stay dense with zeros, so a pruned model is exactly as large and as fast as the
original on CPU; the gain is only what a later stage (sparse storage, N:M kernels) makes
of it. Masks are applied permanently: the state dict holds plain ``weight`` tensors, no
``weight_orig``/``weight_mask``, so no restorer is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.utils import prune as torch_prune

from wattlm._config import check_choice, check_int
from wattlm.compress import sparsity as sp
from wattlm.compress.base import CompressConfig, CompressContext, register
from wattlm.errors import WattlmError

DEFAULT_SKIP = ("lm_head", "*embed*")
_FINETUNE_BATCH = 4


def _check_sparsity(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise WattlmError(f"{name} must be in [0, 1), got {value}", hint="e.g. 0.5 prunes half")


@register("magnitude-prune")
@dataclass(frozen=True)
class MagnitudePruneConfig(CompressConfig):
    """Zero the smallest-magnitude weights of the targeted ``nn.Linear`` layers.

    Exactly one of ``sparsity`` (fraction pruned, exact count) or ``threshold`` (prune
    ``|w| < threshold``) is set. ``scope="global"`` ranks all targeted weights together,
    ``"layer"`` prunes each layer to ``sparsity``. ``steps > 1`` reaches ``sparsity`` by the
    cubic schedule of Zhu & Gupta (2017); after every step, ``finetune_steps`` AdamW steps of
    causal-LM training on ``finetune_samples`` × ``finetune_seq_len`` calibration tokens run
    with the masks held fixed (``torch.nn.utils.prune``), then the masks are made permanent.

    Example:
        >>> MagnitudePruneConfig(sparsity=0.3, scope="layer").to_dict()["scope"]
        'layer'
        >>> MagnitudePruneConfig(sparsity=0.5, threshold=0.1)
        Traceback (most recent call last):
        wattlm.errors.WattlmError: set exactly one of sparsity or threshold, got both (...)
    """

    sparsity: float | None = 0.5
    threshold: float | None = None
    scope: str = "global"
    targets: tuple[str, ...] = ("*proj",)
    skip: tuple[str, ...] = DEFAULT_SKIP
    steps: int = 1
    finetune_steps: int = 0
    finetune_lr: float = 1e-4
    finetune_samples: int = 16
    finetune_seq_len: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "skip", tuple(self.skip))
        if (self.sparsity is None) == (self.threshold is None):
            got = "both" if self.sparsity is not None else "neither"
            raise WattlmError(
                f"set exactly one of sparsity or threshold, got {got}",
                hint="sparsity: 0.5 prunes half; threshold: 0.01 prunes |w| < 0.01",
            )
        if self.sparsity is not None:
            _check_sparsity("sparsity", self.sparsity)
        if self.threshold is not None and (self.threshold < 0 or self.steps != 1):
            raise WattlmError(
                f"threshold must be >= 0 and used with steps=1, got {self.threshold}, "
                f"steps={self.steps}",
                hint="the cubic schedule ramps a sparsity; use sparsity with steps > 1",
            )
        check_choice("scope", self.scope, ("global", "layer"))
        if self.steps < 1 or self.finetune_steps < 0 or self.finetune_lr <= 0:
            raise WattlmError("steps must be >= 1, finetune_steps >= 0 and finetune_lr > 0")
        check_int("finetune_samples", self.finetune_samples)
        check_int("finetune_seq_len", self.finetune_seq_len, 2)


def magnitude_masks(
    layers: dict[str, torch.nn.Linear], sparsity: float, scope: str
) -> dict[str, torch.Tensor]:
    """Keep-masks pruning exactly ``round(sparsity × weights)`` smallest ``|w|``."""
    scores = {name: layer.weight.detach().abs() for name, layer in layers.items()}
    if scope == "global":
        total = sum(s.numel() for s in scores.values())
        return sp.lowest_k_masks(scores, round(sparsity * total))
    return {name: _layer_keep(s, sparsity) for name, s in scores.items()}


def _layer_keep(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    return sp.lowest_k_masks({"w": scores}, round(sparsity * scores.numel()))["w"]


@contextlib.contextmanager
def fixed_masks(
    layers: dict[str, torch.nn.Linear], masks: dict[str, torch.Tensor]
) -> Iterator[None]:
    """Hold ``masks`` during training (``weight = weight_orig * weight_mask``); on exit the
    masks are made permanent (``prune.remove``), leaving plain ``weight`` parameters."""
    for name, mask in masks.items():
        torch_prune.custom_from_mask(layers[name], "weight", mask.to(layers[name].weight.device))
    try:
        yield
    finally:
        for layer in layers.values():
            torch_prune.remove(layer, "weight")


def finetune_causal_lm(
    model: torch.nn.Module, ids: torch.Tensor, *, steps: int, lr: float
) -> list[float]:
    """A short causal-LM fine-tune: ``steps`` AdamW steps on batches cycled from ``ids``."""
    was_training = model.training
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    device = next(model.parameters()).device
    losses = []
    for step in range(steps):
        start = (step * _FINETUNE_BATCH) % ids.shape[0]
        batch = ids[start : start + _FINETUNE_BATCH].to(device)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.train(was_training)
    return losses


@MagnitudePruneConfig.handler
def _apply_magnitude(
    model: torch.nn.Module, config: MagnitudePruneConfig, ctx: CompressContext
) -> dict[str, Any]:
    layers = sp.select_linears(model, config.targets, config.skip)
    ids = None
    if config.finetune_steps:
        ids = ctx.calibration_batch(config.finetune_samples, config.finetune_seq_len)
    schedule = (
        sp.cubic_schedule(config.sparsity, config.steps) if config.sparsity is not None else [None]
    )
    losses: list[float] = []
    for target in schedule:
        if target is None:  # threshold mode
            masks = {n: m.weight.detach().abs() >= config.threshold for n, m in layers.items()}
        else:
            masks = magnitude_masks(layers, target, config.scope)
        if ids is None:
            sp.apply_masks_(layers, masks)
            continue
        with fixed_masks(layers, masks):
            losses += finetune_causal_lm(
                model, ids, steps=config.finetune_steps, lr=config.finetune_lr
            )
    report = sp.sparsity_report(layers)
    report["schedule"] = [s for s in schedule if s is not None]
    if losses:
        report["finetune_loss_first_last"] = [losses[0], losses[-1]]
    return report


@register("wanda")
@dataclass(frozen=True)
class WandaConfig(CompressConfig):
    """Wanda (Sun et al. 2023): prune the lowest ``|W_ij| · ‖X_j‖₂`` per output row.

    ``‖X_j‖₂`` is the norm of input feature ``j`` over ``calibration_samples`` × ``seq_len``
    train-split tokens, gathered block by block on the already pruned model (Wanda's
    order, :func:`~wattlm.compress.sparsity.wanda_prune_`). ``per_output=False``
    ranks each whole layer instead of each row. For N:M with Wanda scores, use
    ``NMSparsityConfig(criterion="wanda")``.

    Example:
        >>> WandaConfig(sparsity=0.5, calibration_samples=8).to_dict()["calibration_samples"]
        8
    """

    sparsity: float = 0.5
    calibration_samples: int = 32
    seq_len: int = 256
    targets: tuple[str, ...] = ("*proj",)
    skip: tuple[str, ...] = DEFAULT_SKIP
    per_output: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "skip", tuple(self.skip))
        _check_sparsity("sparsity", self.sparsity)
        check_int("calibration_samples", self.calibration_samples)
        check_int("seq_len", self.seq_len, 2)


@WandaConfig.handler
def _apply_wanda(
    model: torch.nn.Module, config: WandaConfig, ctx: CompressContext
) -> dict[str, Any]:
    layers = sp.select_linears(model, config.targets, config.skip)
    ids = ctx.calibration_batch(config.calibration_samples, config.seq_len)
    if config.per_output:
        sp.wanda_prune_(model, layers, ids, lambda s: sp.row_masks(s, config.sparsity))
    else:
        sp.wanda_prune_(model, layers, ids, lambda s: _layer_keep(s, config.sparsity))
    return sp.sparsity_report(layers)
