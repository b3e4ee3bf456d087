"""Int8 Linear modules: weight-only (``int8-weight``) and dynamic activation (``int8-dynamic``).

Both store the weight as a plain ``int8`` buffer ``qweight [out, in]`` and a ``float32``
buffer ``scale [out]`` (``w ≈ qweight * scale[:, None]``, see :mod:`wattlm.compress.qmath`),
so their state dicts are ordinary tensors that safetensors can write.

- :class:`Int8WeightLinear` on CPU calls torch's ``aten._weight_int8pack_mm(x, qweight,
  scale)``, which wants ``x`` and ``scale`` in the same dtype and is ~10× faster with bf16
  than with fp32 activations; ``compute_dtype=None`` ("auto") therefore computes float32
  inputs in bfloat16 on CPU. On CUDA it dequantizes and calls ``F.linear``.
- :class:`Int8DynamicLinear` quantizes each token (row) of ``x`` to int8 at run time
  (symmetric, per token) and multiplies int8 × int8 → int32 with ``torch._int_mm``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wattlm.compress import qmath


class _Int8Linear(torch.nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features))
        self.bias = torch.nn.Parameter(torch.zeros(out_features)) if bias else None
        self._scale_cache: dict[torch.dtype, torch.Tensor] = {}

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, **kwargs):
        """Quantize ``linear``'s weight per output channel (symmetric int8)."""
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, **kwargs)
        q, scale = qmath.quantize_int8_per_channel(linear.weight.detach())
        module.qweight, module.scale = q, scale.to(linear.weight.device)
        if linear.bias is not None:
            module.bias = torch.nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return module

    @property
    def quantized_parameters(self) -> int:
        """Weights stored quantized (buffers, not parameters): counted by parameter_count."""
        return self.in_features * self.out_features

    def dequantize(self) -> torch.Tensor:
        """The float32 weight this module computes with."""
        return qmath.dequantize_int8(self.qweight, self.scale)

    def _scale_as(self, dtype: torch.dtype) -> torch.Tensor:
        cached = self._scale_cache.get(dtype)
        if cached is None or cached.device != self.scale.device:
            cached = self._scale_cache[dtype] = self.scale.to(dtype)
        return cached

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._scale_cache.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, recurse=True):
        self._scale_cache.clear()
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Int8WeightLinear(_Int8Linear):
    """A Linear whose weight is int8 per output channel; activations stay floating point.

    Example:
        >>> lin = torch.nn.Linear(64, 32, bias=False)
        >>> q = Int8WeightLinear.from_linear(lin)
        >>> (q.qweight.dtype, q.scale.shape, q(torch.randn(2, 64)).dtype)
        (torch.int8, torch.Size([32]), torch.float32)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias)
        self.compute_dtype = compute_dtype

    def _dtype_for(self, x: torch.Tensor) -> torch.dtype:
        if self.compute_dtype is not None:
            return self.compute_dtype
        if x.dtype == torch.float32 and x.device.type == "cpu":
            return torch.bfloat16  # the fp32 path of the CPU kernel is ~10x slower
        return x.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self._dtype_for(x)
        x2 = x.reshape(-1, self.in_features).to(dtype)
        if x.device.type == "cpu":
            y = torch.ops.aten._weight_int8pack_mm(
                x2.contiguous(), self.qweight, self._scale_as(dtype)
            )
        else:
            y = F.linear(x2, self.qweight.to(dtype)) * self._scale_as(dtype)
        if self.bias is not None:
            y = y + self.bias.to(dtype)
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


class Int8DynamicLinear(_Int8Linear):
    """Int8 weights and int8 activations quantized per token at run time (int32 accumulate).

    Example:
        >>> lin = torch.nn.Linear(64, 32, bias=False)
        >>> q = Int8DynamicLinear.from_linear(lin)
        >>> x = torch.randn(3, 64)
        >>> qmath.snr_db(lin(x).detach(), q(x)) > 30
        True
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).float()
        x_scale = (x2.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
        xq = torch.round(x2 / x_scale).clamp_(-127, 127).to(torch.int8)
        rows = xq.shape[0]
        if xq.is_cuda and rows <= 16:  # cuBLAS int8 GEMM needs more than 16 rows
            xq = F.pad(xq, (0, 0, 0, 17 - rows))
        acc = torch._int_mm(xq, self.qweight.t())[:rows]
        y = acc.float() * x_scale * self.scale
        if self.bias is not None:
            y = y + self.bias.float()
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
