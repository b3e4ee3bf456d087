"""Int4 weight-only Linear on torch's own int4 kernels (``int4-weight``).

Stored (the state dict, the same on every machine):

- ``qweight`` uint8 ``[out, in/2]``: the 4-bit codes ``q ∈ [0, 15]`` of
  :func:`~wattlm.compress.qmath.quantize_int4_groupwise`, two per byte, even input index
  in the high nibble (torchao's convention);
- ``scales_and_zeros`` ``[in/g, out, 2]`` in the compute dtype: the layout of torch's
  "tinygemm" kernels, which compute ``w = (q - 8) * scale + zero'`` with a float
  ``zero'``. Quantizing keeps each group's minimum exactly (``zero' = min + 8 * scale``),
  which reproduces weights that already lie on a 4-bit min/max grid (the embedded
  SmolLM2 is a dequantized GGUF Q4_1 file); qmath's integer zero point
  (``w = (q - zero) * scale``, ``zero' = (8 - zero) * scale``) is available too.

The kernels want the codes re-packed in their own layout, which differs between CPU
instruction sets and CUDA (:mod:`wattlm.compress.qlinear_int4_pack`). The module re-packs
lazily on the first call on a device; its state dict always gives the portable layout.

CPU: ``aten._weight_int4pack_mm_for_cpu``, fast only with bf16 activations, so inputs are
cast to ``compute_dtype`` and the result back. CUDA (compute capability 8.0+, bf16):
``aten._weight_int4pack_mm``, the kernel torchao's int4 weight-only config also calls.
"""

from __future__ import annotations

import torch

from wattlm.compress import qmath
from wattlm.compress.qlinear_int4_pack import (
    KERNEL_GROUP_SIZES,
    kernel_pack,
    kernel_unpack,
    pack_nibbles,
    unpack_nibbles,
)
from wattlm.errors import WattlmError

__all__ = ["KERNEL_GROUP_SIZES", "Int4WeightLinear"]


class Int4WeightLinear(torch.nn.Module):
    """A Linear with asymmetric group-wise int4 weights on torch's int4 kernels.

    Example:
        >>> lin = torch.nn.Linear(64, 32, bias=False)
        >>> q = Int4WeightLinear.from_linear(lin, group_size=32)
        >>> (q.qweight.shape, q.scales_and_zeros.shape, q.qweight.dtype)
        (torch.Size([32, 32]), torch.Size([2, 32, 2]), torch.uint8)
        >>> x = torch.randn(4, 64)
        >>> qmath.snr_db(x @ q.dequantize().t(), q(x)) > 35
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        group_size: int = 32,
        bias: bool = False,
        compute_dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        super().__init__()
        qmath.check_group_size(in_features, group_size)
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.compute_dtype = compute_dtype
        self.register_buffer(
            "qweight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8)
        )
        sz = torch.zeros(in_features // group_size, out_features, 2, dtype=compute_dtype)
        self.register_buffer("scales_and_zeros", sz)
        self.bias = torch.nn.Parameter(torch.zeros(out_features)) if bias else None
        self._layout = "portable"  # or the device whose kernel layout qweight holds

    @property
    def quantized_parameters(self) -> int:
        """Weights stored quantized (buffers, not parameters): counted by parameter_count."""
        return self.in_features * self.out_features

    @classmethod
    def from_linear(
        cls, linear: torch.nn.Linear, group_size: int = 32, zero_point: str = "float", **kwargs
    ):
        """Quantize ``linear`` round-to-nearest, group-wise, on the group's min/max.

        ``zero_point="float"`` keeps each group's minimum exactly
        (:func:`~wattlm.compress.qmath.quantize_int4_groupwise_float_zero`, the kernels'
        own convention); ``"int"`` uses qmath's integer zero point
        (:func:`~wattlm.compress.qmath.quantize_int4_groupwise`).
        """
        module = cls(
            linear.in_features, linear.out_features, group_size, linear.bias is not None, **kwargs
        )
        w = linear.weight.detach()
        if zero_point == "float":
            q, scale, offset = qmath.quantize_int4_groupwise_float_zero(w, group_size)
            zero = offset + 8 * scale
        else:
            q, scale, int_zero = qmath.quantize_int4_groupwise(w, group_size)
            zero = (8 - int_zero) * scale
        module.qweight = pack_nibbles(q)
        sz = torch.stack([scale, zero], dim=-1).transpose(0, 1).contiguous()
        module.scales_and_zeros = sz.to(module.compute_dtype)
        if linear.bias is not None:
            module.bias = torch.nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return module

    def codes(self) -> torch.Tensor:
        """The 4-bit codes ``[out, in]`` (uint8), whatever layout ``qweight`` holds now."""
        if self._layout == "portable":
            return unpack_nibbles(self.qweight)
        shape = (self.out_features, self.in_features)
        return kernel_unpack(self.qweight, shape, torch.device(self._layout))

    def dequantize(self) -> torch.Tensor:
        """The float32 weight this module computes with (its stored scales and zeros)."""
        sz = self.scales_and_zeros.float().transpose(0, 1)  # [out, groups, 2]
        g = self.codes().float().reshape(self.out_features, -1, self.group_size)
        return ((g - 8) * sz[..., :1] + sz[..., 1:]).reshape(self.out_features, self.in_features)

    def _pack_for(self, device: torch.device) -> None:
        if self._layout == str(device):
            return
        if device.type == "cuda" and self.compute_dtype != torch.bfloat16:
            raise WattlmError("the CUDA int4 kernel computes in bfloat16 only")
        self.qweight = kernel_pack(self.codes(), device).to(device)
        self._layout = str(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._pack_for(x.device)
        x2 = x.reshape(-1, self.in_features).to(self.compute_dtype).contiguous()
        if x.device.type == "cpu":
            mm = torch.ops.aten._weight_int4pack_mm_for_cpu
        else:
            mm = torch.ops.aten._weight_int4pack_mm
        sz = self.scales_and_zeros.to(self.compute_dtype)  # no-op unless a later cast
        y = mm(x2, self.qweight, self.group_size, sz)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._layout != "portable":
            destination[prefix + "qweight"] = pack_nibbles(self.codes())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if self._layout != "portable":  # the kernel layout may have another shape
            shape = (self.out_features, self.in_features // 2)
            self.qweight = torch.zeros(shape, dtype=torch.uint8, device=self.qweight.device)
            self._layout = "portable"
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"group_size={self.group_size}, layout={self._layout}"
        )
