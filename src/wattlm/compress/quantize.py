"""Round-to-nearest weight quantization: ``int8-weight``, ``int4-weight``, ``int8-dynamic``.

Every ``nn.Linear`` not matching ``skip`` (glob patterns on module names) is swapped for a
quantized module of :mod:`wattlm.compress.qlinear` / :mod:`wattlm.compress.qlinear_int4`
that stores plain int8 / uint8 buffers, so the model saves to safetensors and a restorer
rebuilds the shells before the saved tensors load.

``embedding_dtype`` casts the token embedding (and a ``lm_head`` tied to it and kept in
float) to a smaller float type: on SmolLM2 the tied 49152×576 fp32 matrix is 113 MB, more
than all int4 layers together (see :func:`~wattlm.compress.quantize_swap.cast_embedding`).

torchao is not used: its configs leave tensor subclasses in the model, which safetensors
cannot store. The modules call the aten kernels torchao itself calls (``_weight_int8pack_mm``
and ``_weight_int4pack_mm_for_cpu`` on CPU; ``_weight_int4pack_mm`` and ``_int_mm`` on
CUDA). The CUDA paths are written but untested here (no GPU on the development machine).

Example:
    >>> from wattlm.compress import compress_
    >>> from wattlm.testing.tiny import tiny_causal_lm
    >>> model = tiny_causal_lm().model
    >>> report = compress_(model, Int4WeightConfig(group_size=32))
    >>> report["layers_quantized"], type(model.model.layers[0].mlp.up_proj).__name__
    (14, 'Int4WeightLinear')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from wattlm.compress import qmath
from wattlm.compress.base import CompressConfig, CompressContext, register
from wattlm.compress.qlinear import Int8DynamicLinear, Int8WeightLinear
from wattlm.compress.qlinear_int4 import KERNEL_GROUP_SIZES, Int4WeightLinear
from wattlm.compress.quantize_swap import cast_embedding, linear_modules, replace_linears
from wattlm.errors import WattlmError
from wattlm.models.fingerprint import weight_bytes
from wattlm.models.names import DTYPE_NAMES, torch_dtype


def _check_dtype(field: str, value: str | None, allowed: tuple[str | None, ...]) -> None:
    if value not in allowed:
        raise WattlmError(f"{field} {value!r} is not supported", hint=f"choose from: {allowed}")


@register("int8-weight")
@dataclass(frozen=True)
class Int8WeightConfig(CompressConfig):
    """Int8 per-output-channel symmetric weights; activations stay floating point.

    ``compute_dtype="auto"`` computes fp32 inputs in bf16 on CPU (torch's int8 CPU kernel
    is ~10× slower in fp32) and keeps other inputs' dtype.

    Example:
        >>> Int8WeightConfig().to_dict()
        {'method': 'int8-weight', 'skip': ['lm_head'], 'compute_dtype': 'auto', 'embedding_dtype': None}
    """

    skip: tuple[str, ...] = ("lm_head",)
    compute_dtype: str = "auto"
    embedding_dtype: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip", tuple(self.skip))
        _check_dtype("compute_dtype", self.compute_dtype, ("auto", *DTYPE_NAMES))
        _check_dtype("embedding_dtype", self.embedding_dtype, (None, *DTYPE_NAMES))


@register("int4-weight")
@dataclass(frozen=True)
class Int4WeightConfig(CompressConfig):
    """Asymmetric group-wise int4 weights on torch's int4 kernels (bf16 activations).

    ``group_size`` input features share a scale and zero point (32, 64, 128 or 256; it
    must divide every quantized layer's input). ``zero_point="float"`` keeps each group's
    minimum exactly, which reproduces weights already on a 4-bit min/max grid (GPTQ's
    output, a dequantized GGUF Q4_1 file); ``"int"`` rounds the zero point to an integer
    (qmath's grid, ~1 dB worse on Gaussian weights). ``embedding_dtype`` casts the
    (tied) embedding, which the int4 layers do not shrink.

    Example:
        >>> Int4WeightConfig(group_size=64).group_size
        64
        >>> Int4WeightConfig(group_size=48)
        Traceback (most recent call last):
        wattlm.errors.WattlmError: group_size 48 is not supported by torch's int4 kernels (...)
    """

    group_size: int = 32
    skip: tuple[str, ...] = ("lm_head",)
    compute_dtype: str = "bfloat16"
    embedding_dtype: str | None = "bfloat16"
    zero_point: str = "float"

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip", tuple(self.skip))
        if self.group_size not in KERNEL_GROUP_SIZES:
            raise WattlmError(
                f"group_size {self.group_size} is not supported by torch's int4 kernels",
                hint=f"choose from: {', '.join(map(str, KERNEL_GROUP_SIZES))}",
            )
        _check_dtype("compute_dtype", self.compute_dtype, ("bfloat16", "float32"))
        _check_dtype("embedding_dtype", self.embedding_dtype, (None, *DTYPE_NAMES))
        if self.zero_point not in ("float", "int"):
            raise WattlmError(
                f"zero_point {self.zero_point!r} is not supported",
                hint="'float' (keeps each group's minimum exactly) or 'int' (qmath's grid)",
            )


@register("int8-dynamic")
@dataclass(frozen=True)
class Int8DynamicConfig(CompressConfig):
    """Int8 per-channel weights × int8 per-token activations (quantized at run time).

    Example:
        >>> Int8DynamicConfig(skip=("lm_head", "*.down_proj")).skip
        ('lm_head', '*.down_proj')
    """

    skip: tuple[str, ...] = ("lm_head",)
    embedding_dtype: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip", tuple(self.skip))
        _check_dtype("embedding_dtype", self.embedding_dtype, (None, *DTYPE_NAMES))


def _targets(model: torch.nn.Module, config: Any) -> dict[str, torch.nn.Linear]:
    """The Linear modules to quantize, checked against the kernels' shape rules first."""
    found = linear_modules(model, skip=config.skip)
    if not found:
        raise WattlmError(
            f"no Linear layer left to quantize (skip={list(config.skip)})",
            hint="check the skip patterns against the model's module names",
        )
    if isinstance(config, Int4WeightConfig):
        for name, m in found.items():
            try:
                qmath.check_group_size(m.in_features, config.group_size)
            except WattlmError as err:
                raise WattlmError(f"{name}: {err.message}", hint=err.hint) from None
            if m.out_features % 16:
                raise WattlmError(
                    f"{name}: torch's CPU int4 kernel needs out_features divisible by 16, "
                    f"got {m.out_features}",
                    hint=f"add {name!r} to skip",
                )
    return found


def _build(config: Any, linear: torch.nn.Linear, shell: bool) -> torch.nn.Module:
    if isinstance(config, Int4WeightConfig):
        kwargs = {
            "group_size": config.group_size,
            "compute_dtype": torch_dtype(config.compute_dtype),
        }
        cls = Int4WeightLinear
        if not shell:
            return cls.from_linear(linear, zero_point=config.zero_point, **kwargs)
    elif isinstance(config, Int8WeightConfig):
        auto = config.compute_dtype == "auto"
        kwargs = {"compute_dtype": None if auto else torch_dtype(config.compute_dtype)}
        cls = Int8WeightLinear
    else:
        kwargs, cls = {}, Int8DynamicLinear
    if not shell:
        return cls.from_linear(linear, **kwargs)
    module = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, **kwargs)
    return module.to(linear.weight.device)


def _swap(model: torch.nn.Module, config: Any, shell: bool) -> list[str]:
    targets = _targets(model, config)
    replace_linears(model, {n: _build(config, m, shell) for n, m in targets.items()})
    cast_embedding(model, config.embedding_dtype and torch_dtype(config.embedding_dtype))
    return sorted(targets)


def _apply(model: torch.nn.Module, config: Any, ctx: CompressContext) -> dict[str, Any]:
    before, targets = weight_bytes(model), _targets(model, config)
    linear_before = sum(m.weight.numel() * m.weight.element_size() for m in targets.values())
    skipped = sorted(set(linear_modules(model)) - set(targets))
    names = _swap(model, config, shell=False)
    quantized = [model.get_submodule(n) for n in names]
    linear_after = sum(t.numel() * t.element_size() for m in quantized for t in m.buffers())
    return {
        "layers_quantized": len(names),
        "layers_skipped": skipped,
        "weight_bytes_before": before,
        "weight_bytes_after": weight_bytes(model),
        "quantized_weight_bytes_before": linear_before,
        "quantized_weight_bytes_after": linear_after,
    }


def _restore(model: torch.nn.Module, config: Any) -> None:
    _swap(model, config, shell=True)


for _cls in (Int8WeightConfig, Int4WeightConfig, Int8DynamicConfig):
    _cls.handler(_apply)
    _cls.restorer(_restore)
