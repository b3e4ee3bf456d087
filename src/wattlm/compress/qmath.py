"""Quantization arithmetic shared by every method (one place, so methods cannot drift).

- int8: symmetric, per output channel: ``w ≈ q * scale``, ``q ∈ [-127, 127]``.
- int4: asymmetric, group-wise along the input dimension: ``w ≈ (q - zero) * scale``,
  ``q ∈ [0, 15]``, one ``scale``/``zero`` per ``group_size`` input features.
"""

from __future__ import annotations

import torch

from wattlm.errors import WattlmError


def check_group_size(in_features: int, group_size: int) -> None:
    """Fail early when ``group_size`` does not divide the layer's input features."""
    if group_size < 1 or in_features % group_size:
        raise WattlmError(
            f"group size {group_size} does not divide {in_features} input features",
            hint="pick a group size that divides every quantized layer's input (e.g. 32, 64)",
        )


def quantize_int8_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q int8 [out, in], scale float32 [out])`` with ``w ≈ q * scale[:, None]``.

    Example:
        >>> w = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
        >>> q, s = quantize_int8_per_channel(w)
        >>> torch.allclose(dequantize_int8(q, s), w, atol=0.01)
        True
    """
    w = w.float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale[:, None]


def quantize_int4_groupwise(
    w: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(q uint8 in [0,15] [out, in], scale [out, in/g], zero [out, in/g])`` (float32).

    Example:
        >>> w = torch.randn(4, 64)
        >>> q, s, z = quantize_int4_groupwise(w, 32)
        >>> (q.max() <= 15, s.shape)
        (tensor(True), torch.Size([4, 2]))
    """
    out_f, in_f = w.shape
    check_group_size(in_f, group_size)
    g = w.float().reshape(out_f, in_f // group_size, group_size)
    lo, hi = g.amin(dim=2), g.amax(dim=2)
    scale = ((hi - lo) / 15.0).clamp(min=1e-12)
    zero = torch.round(-lo / scale).clamp(0, 15)
    q = torch.round(g / scale[..., None] + zero[..., None]).clamp(0, 15)
    return q.reshape(out_f, in_f).to(torch.uint8), scale, zero


def dequantize_int4_groupwise(
    q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, group_size: int
) -> torch.Tensor:
    out_f, in_f = q.shape
    g = q.float().reshape(out_f, in_f // group_size, group_size)
    return ((g - zero[..., None]) * scale[..., None]).reshape(out_f, in_f)


def fake_quantize_int4(w: torch.Tensor, group_size: int) -> torch.Tensor:
    """Quantize-dequantize round trip (what an int4 layer will compute with)."""
    return dequantize_int4_groupwise(*quantize_int4_groupwise(w, group_size), group_size).to(
        w.dtype
    )


def snr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-noise ratio in dB of ``approx`` against ``reference`` (torchao's check)."""
    ref = reference.float()
    noise = (ref - approx.float()).pow(2).mean().clamp(min=1e-30)
    return float(10 * torch.log10(ref.pow(2).mean() / noise))


def quantize_int4_groupwise_float_zero(
    w: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(q uint8 in [0,15] [out, in], scale [out, in/g], offset [out, in/g])`` (float32),
    ``w ≈ q * scale + offset`` with ``offset`` the group minimum, kept exactly (a float
    zero point, the convention of torch's int4 "tinygemm" kernels). Unlike the integer
    zero of :func:`quantize_int4_groupwise`, it reproduces exactly any 4-bit min/max grid
    the weights already lie on (e.g. a GGUF Q4_1 file dequantized to float).

    Example:
        >>> w = torch.tensor([[0.1 + 0.3 * i for i in range(16)] * 2])
        >>> q, s, o = quantize_int4_groupwise_float_zero(w, 32)
        >>> torch.allclose(dequantize_int4_float_zero(q, s, o, 32), w, atol=1e-6)
        True
    """
    out_f, in_f = w.shape
    check_group_size(in_f, group_size)
    g = w.float().reshape(out_f, in_f // group_size, group_size)
    lo, hi = g.amin(dim=2), g.amax(dim=2)
    scale = ((hi - lo) / 15.0).clamp(min=1e-12)
    q = torch.round((g - lo[..., None]) / scale[..., None]).clamp(0, 15)
    return q.reshape(out_f, in_f).to(torch.uint8), scale, lo


def dequantize_int4_float_zero(
    q: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, group_size: int
) -> torch.Tensor:
    out_f, in_f = q.shape
    g = q.float().reshape(out_f, in_f // group_size, group_size)
    return (g * scale[..., None] + offset[..., None]).reshape(out_f, in_f)
