"""Recovery fine-tuning as a recipe stage: prune → ``heal`` → quantize.

``heal`` trains the model in place for a few causal-LM steps on the compress context's
calibration text (the **train** split, never the test split that perplexity is measured
on), through the training engine's one loop (:func:`wattlm.training.loop.train_loop`): the
same optimizer, learning-rate schedule, precision and gradient clipping as
``wattlm train finetune``. With ``keep_sparsity`` the zeros an earlier pruning stage left
are set back to zero after every optimizer step
(:class:`~wattlm.training.recovery.SparsityMasks`), so the sparsity after equals the sparsity
before, weight for weight. A model without zeros (structured pruning, dropped layers) heals
without masks, and the report says so.

The steps run under an energy meter (``meter``, ``auto`` by default, as for ``wattlm
train``): the report carries ``energy_j`` and ``energy_source``, what healing cost.

Weights stay plain float ``nn.Linear`` values, so no restorer is needed. ``heal`` trains
float weights: put it before quantization stages (it refuses quantized layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from wattlm._config import check, check_choice, check_int, check_positive
from wattlm.compress.base import CompressConfig, CompressContext, register
from wattlm.errors import WattlmError
from wattlm.measure import METER_KINDS
from wattlm.training.data import TextChunks
from wattlm.training.ddp import DistEnv
from wattlm.training.loop import LoopSpec, prepare_model, train_loop
from wattlm.training.losses import TaskLoss
from wattlm.training.options import TrainOptions
from wattlm.training.recovery import SparsityMasks

PRECISIONS = ("fp32", "bf16")


def _as_float(name: str, value: Any) -> float:
    """A number from a recipe. YAML 1.1 reads ``5e-5`` (no dot) as a string, so a string
    that parses as a float is accepted too."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise WattlmError(f"{name} must be a number, got {value!r}")


@register("heal")
@dataclass(frozen=True)
class HealConfig(CompressConfig):
    """Fine-tune for ``steps`` optimizer steps on ``samples`` × ``seq_len`` calibration tokens.

    Batches of ``batch_size`` sequences are drawn epoch after epoch (a fresh seeded order
    each pass) until ``steps`` or ``max_time_s`` is reached; ``meter`` measures the energy
    the steps take (one of :data:`~wattlm.measure.METER_KINDS`). AdamW without weight decay,
    linear decay of ``lr`` to zero, gradient norm clipped at 1; ``precision="bf16"`` runs
    the forward pass under bf16 autocast (weights and optimizer stay fp32).

    Example:
        >>> HealConfig(steps=50, lr="5e-5").lr
        5e-05
        >>> HealConfig(batch_size=8, samples=4)
        Traceback (most recent call last):
        wattlm.errors.WattlmError: samples (4) must be at least batch_size (8) (...)
    """

    steps: int = 100
    lr: float = 5e-5
    batch_size: int = 4
    seq_len: int = 128
    samples: int = 64
    keep_sparsity: bool = True
    max_time_s: float | None = None
    precision: str = "fp32"
    seed: int = 0
    meter: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _as_float("lr", self.lr))
        if self.max_time_s is not None:
            object.__setattr__(self, "max_time_s", _as_float("max_time_s", self.max_time_s))
        check_positive("lr", self.lr)
        for name, low in (("steps", 1), ("batch_size", 1), ("seq_len", 2), ("samples", 1)):
            check_int(name, getattr(self, name), low)
        check_int("seed", self.seed, 0)
        check(
            self.samples >= self.batch_size,
            f"samples ({self.samples}) must be at least batch_size ({self.batch_size})",
            hint="each step draws batch_size of the samples calibration sequences",
        )
        check(
            isinstance(self.keep_sparsity, bool),
            f"keep_sparsity must be true or false, got {self.keep_sparsity!r}",
        )
        if self.max_time_s is not None:
            check_positive("max_time_s", self.max_time_s)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("meter", self.meter, METER_KINDS)


def _check_trainable(model: torch.nn.Module) -> list[str]:
    """Refuse what heal cannot train; return notes about what it trains poorly."""
    quantized = [n for n, m in model.named_modules() if hasattr(m, "qweight")]
    if quantized:
        raise WattlmError(
            f"heal trains float weights, but {len(quantized)} layer(s) are already quantized "
            f"(e.g. {quantized[0]})",
            hint="put heal before the int8/int4 stages: prune → heal → quantize",
        )
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    frozen = sum(not m.weight.requires_grad for m in linears)
    check(
        frozen == 0,
        f"heal: {frozen} nn.Linear weight(s) are frozen (e.g. 2:4 semi-structured tensors)",
        hint="put heal before nm-sparsity with semi_structured: true",
    )
    low = {str(m.weight.dtype) for m in linears if m.weight.dtype != torch.float32}
    if low:
        return [f"weights in {', '.join(sorted(low))}: small updates round away; heal before cast"]
    return []


@HealConfig.handler
def _apply(model: torch.nn.Module, config: HealConfig, ctx: CompressContext) -> dict[str, Any]:
    notes = _check_trainable(model)
    ids = ctx.calibration_batch(config.samples, config.seq_len)
    device = str(next(model.parameters()).device)
    try:  # the layers a pruning stage left zeros in (> 5% zeros)
        masks = SparsityMasks.from_zeros(model)
    except WattlmError:  # none: structured pruning, dropped layers, or no pruning at all
        masks = None
        if config.keep_sparsity:
            notes.append("no zero weights to keep (e.g. structured pruning): trained unmasked")
    sparsity_before = masks.sparsity() if masks else None
    options = TrainOptions(
        lr=config.lr,
        epochs=None,
        max_steps=config.steps,
        max_time_s=config.max_time_s,
        batch_size=config.batch_size,
        weight_decay=0.0,
        precision=config.precision,
        seed=config.seed,
        device="cuda" if device.startswith("cuda") else "cpu",
        meter=config.meter,
    )
    data = TextChunks(ids.reshape(-1).tolist(), config.seq_len)
    hf_config = getattr(model, "config", None)
    use_cache = getattr(hf_config, "use_cache", None)
    keep = masks.apply_ if masks is not None and config.keep_sparsity else None
    was_training = model.training
    prepare_model(model, options)  # no KV cache while training
    try:
        loop = train_loop(
            LoopSpec(TaskLoss(model), data, options, DistEnv(device=device), after_step=keep)
        )
    finally:
        model.train(was_training)
        if use_cache is not None:
            hf_config.use_cache = use_cache
    report: dict[str, Any] = {
        "steps": loop.steps,
        "stopped_by": loop.stopped_by,
        "tokens": loop.tokens,
        "loss_first": loop.loss_first,
        "loss_last": loop.loss_last,
        "sparsity_before": sparsity_before,
        "sparsity_after": masks.sparsity() if masks else None,
        "masked_layers": len(masks.masks) if keep else 0,
        "time_s": loop.time_s,
        "energy_j": loop.energy_j,
        "energy_source": loop.energy_source,
    }
    if notes:
        report["notes"] = notes
    return report
