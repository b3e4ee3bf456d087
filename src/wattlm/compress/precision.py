"""Precision casting: bf16 / fp16 weights, with per-module exceptions."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import torch

from wattlm._config import check_choice
from wattlm.compress.base import CompressConfig, CompressContext, register
from wattlm.errors import WattlmError
from wattlm.models.names import DTYPE_NAMES, torch_dtype


@register("cast")
@dataclass(frozen=True)
class CastConfig(CompressConfig):
    """Cast parameters and buffers to ``dtype``, except modules matching ``keep``.

    ``keep`` holds glob patterns on module names (``"lm_head"``, ``"*.embed_tokens"``);
    kept modules stay in float32 (a tied embedding stays with its ``lm_head``) and compute in
    float32, while the activations between modules stay in ``dtype`` (the output embedding
    returns float32 logits). Rotary-embedding buffers are always kept in float32.

    Example:
        >>> CastConfig(dtype="float16", keep=("lm_head",)).to_dict()
        {'method': 'cast', 'dtype': 'float16', 'keep': ['lm_head']}
    """

    dtype: str = "bfloat16"
    keep: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_choice("dtype", self.dtype, DTYPE_NAMES)
        object.__setattr__(self, "keep", tuple(self.keep))


def _kept(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, p) or name.endswith("." + p) or name == p for p in patterns)


def _cast(model: torch.nn.Module, config: CastConfig) -> int:
    dtype = torch_dtype(config.dtype)
    kept_modules = [m for n, m in model.named_modules() if _kept(n, config.keep) or "rotary" in n]
    # a tied parameter (embedding = lm_head) stays if any module that owns it is kept
    kept = {id(t) for m in kept_modules for t in [*m.parameters(), *m.buffers()]}
    changed = 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in kept and p.is_floating_point() and p.dtype != dtype:
                p.data = p.data.to(dtype)
                changed += p.numel()
        for bname, b in module.named_buffers(recurse=False):
            if id(b) not in kept and b.is_floating_point() and b.dtype != dtype:
                setattr(module, bname, b.to(dtype))
    if config.keep:
        _hook_kept_modules(model, kept, dtype)
    return changed


def _hook_kept_modules(model: torch.nn.Module, kept: set[int], dtype: torch.dtype) -> None:
    """Keep activations between modules in ``dtype`` around the modules left in float32.

    A kept module computes in its own weights' precision (a Linear upcasts its input) and
    hands ``dtype`` back to the rest of the model, so every tensor that meets another one
    (residual stream, query/key/value, rotary tables) has one dtype. The output embedding
    is the exception: its float32 logits are what keeping it was for. Without this, a tied
    float32 embedding feeds a float32 stream into bfloat16 projections and attention mixes
    dtypes (transformers' SDPA path refuses that).
    """
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for module in model.modules():
        if not any(id(p) in kept for p in module.parameters(recurse=False)):
            continue
        if hasattr(module, "_wattlm_cast_hooks"):
            continue
        hooks = []
        if isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_pre_hook(_input_to_weight_dtype))
        if module is not output:
            module._wattlm_stream_dtype = dtype
            hooks.append(module.register_forward_hook(_output_to_stream_dtype))
        module._wattlm_cast_hooks = hooks


def _input_to_weight_dtype(module: torch.nn.Linear, args: tuple) -> tuple:
    return (args[0].to(module.weight.dtype), *args[1:])


def _output_to_stream_dtype(module: torch.nn.Module, args: tuple, output: Any) -> Any:
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        return output.to(module._wattlm_stream_dtype)
    return output


@CastConfig.handler
def _apply(model: torch.nn.Module, config: CastConfig, ctx: CompressContext) -> dict[str, Any]:
    changed = _cast(model, config)
    if config.keep and not any(_kept(n, config.keep) for n, _ in model.named_modules()):
        raise WattlmError(f"keep patterns {list(config.keep)} match no module of the model")
    return {"cast_parameters": changed}


@CastConfig.restorer
def _restore(model: torch.nn.Module, config: CastConfig) -> None:
    _cast(model, config)
