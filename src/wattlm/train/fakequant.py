"""Fake quantization for QAT, and conversion to the real int8 layers of :mod:`wattlm.compress`.

During training each targeted ``nn.Linear`` computes with its weight rounded to the int8
grid (symmetric, per output channel) and, for ``int8-dynamic``, its input rounded to int8
per token; gradients pass through the rounding unchanged (straight-through estimator).
Conversion then stores exactly those int8 values: the converted model computes what the
fake-quantized one computed, so what QAT learned to tolerate is what ships.

The weight grid is torchao's: ``scale = max|w| / 127.5``, ``q = clamp(round(w/scale),
-128, 127)`` (:func:`int8_grid`, checked against torchao in the tests). The activation
grid is :class:`~wattlm.compress.qlinear.Int8DynamicLinear`'s: symmetric per token,
``[-127, 127]`` (torchao's QAT offers only asymmetric per-token activations, which that
kernel does not run, so this fake quantizer is wattlm's on both backends).

Backends: ``torchao`` swaps layers with torchao's ``QATConfig(step="prepare")`` (its
``FakeQuantizedLinear`` and ``IntxFakeQuantizer``) and undoes the swap with
``step="convert"``; ``wattlm`` uses :class:`FakeQuantLinear` (same arithmetic, no torchao).

Example:
    >>> w = torch.tensor([[1.0, -0.5, 0.25]])
    >>> q, scale = int8_grid(w)
    >>> q.tolist(), round(float(scale[0]), 6)
    ([[127, -64, 32]], 0.007843)
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F

from wattlm.compress.qlinear import Int8DynamicLinear, Int8WeightLinear
from wattlm.compress.quantize_swap import replace_linears
from wattlm.errors import WattlmError

_TINY = torch.finfo(torch.float32).smallest_normal


def int8_grid(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q int8 [out, in], scale float32 [out])``: torchao's symmetric per-channel grid."""
    w = w.detach().float()
    scale = (w.abs().amax(dim=1) / 127.5).clamp(min=_TINY)
    q = torch.round(w * (1.0 / scale[:, None])).clamp(-128, 127).to(torch.int8)
    return q, scale


def fake_quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """``w`` rounded to :func:`int8_grid` in the forward pass, identity in the backward."""
    q, scale = int8_grid(w)
    return w + (q.float() * scale[:, None] - w).detach().to(w.dtype)


class ActivationFakeQuant(torch.nn.Module):
    """Per-token symmetric int8 rounding of activations (``Int8DynamicLinear``'s grid), with
    a straight-through gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.detach().float()
        scale = (xf.abs().amax(dim=-1, keepdim=True) / 127.0).clamp(min=1e-12)
        xq = torch.round(xf / scale).clamp(-127, 127) * scale
        return x + (xq - xf).to(x.dtype)


class FakeQuantLinear(torch.nn.Linear):
    """A Linear computing with fake-quantized int8 weights (and activations, optionally)."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *, activations: bool = False
    ):
        super().__init__(in_features, out_features, bias)
        self.activation_fake_quantizer = ActivationFakeQuant() if activations else None

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, *, activations: bool) -> FakeQuantLinear:
        with torch.device("meta"):
            new = cls(
                linear.in_features,
                linear.out_features,
                linear.bias is not None,
                activations=activations,
            )
        new.weight, new.bias = linear.weight, linear.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation_fake_quantizer is not None:
            x = self.activation_fake_quantizer(x)
        return F.linear(x, fake_quantize_weight(self.weight), self.bias)


def resolve_backend(backend: str) -> str:
    """``torchao`` or ``wattlm``; ``auto`` takes torchao when it is installed."""
    have = importlib.util.find_spec("torchao") is not None
    if backend == "torchao" and not have:
        raise WattlmError(
            "the torchao QAT backend needs torchao",
            hint="pip install torchao, or --qat-backend wattlm",
        )
    if backend == "auto":
        return "torchao" if have else "wattlm"
    return backend


def prepare_qat_(model: torch.nn.Module, targets: list[str], *, scheme: str, backend: str) -> None:
    """Swap the ``targets`` Linears of ``model`` for fake-quantized ones, in place."""
    dynamic = scheme == "int8-dynamic"
    if backend == "torchao":
        from torchao.quantization import quantize_
        from torchao.quantization.qat import IntxFakeQuantizeConfig, QATConfig

        weight = IntxFakeQuantizeConfig(torch.int8, "per_channel", is_symmetric=True)
        names = set(targets)
        quantize_(
            model,
            QATConfig(weight_config=weight, step="prepare"),
            filter_fn=lambda m, fqn: fqn in names,
        )
        if dynamic:
            for name in targets:
                model.get_submodule(name).activation_fake_quantizer = ActivationFakeQuant()
        return
    new = {
        n: FakeQuantLinear.from_linear(model.get_submodule(n), activations=dynamic) for n in targets
    }
    replace_linears(model, new)


def convert_qat_(model: torch.nn.Module, targets: list[str], *, scheme: str, backend: str) -> int:
    """Replace the fake-quantized ``targets`` with compress's int8 modules holding exactly
    the int8 weights they trained with; returns how many layers were converted."""
    if backend == "torchao":
        from torchao.quantization import quantize_
        from torchao.quantization.qat import QATConfig

        quantize_(model, QATConfig(step="convert"))  # FakeQuantizedLinear -> nn.Linear
    cls = Int8DynamicLinear if scheme == "int8-dynamic" else Int8WeightLinear
    new = {}
    for name in targets:
        linear = model.get_submodule(name)
        module = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        module.qweight, module.scale = int8_grid(linear.weight)
        if linear.bias is not None:
            module.bias = torch.nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        new[name] = module.to(linear.weight.device)
    replace_linears(model, new)
    return len(new)
