"""Layer-by-layer calibration plumbing for data-aware methods (GPTQ and the like).

A decoder runs one block at a time on the calibration batch: the inputs of block 0 are
captured once, then each block is compressed and run to give the next block its inputs,
so block ``i + 1`` sees what the already compressed block ``i`` computes (as the GPTQ
reference implementation does). Hooks collect what a Linear layer sees (``XᵀX``) and
stop the block as soon as they have it.

Example:
    >>> from wattlm.testing.tiny import tiny_causal_lm
    >>> model = tiny_causal_lm().model
    >>> prefix, layers = decoder_layers(model)
    >>> inputs = capture_layer_inputs(model, torch.randint(0, 300, (2, 16)))
    >>> prefix, len(layers), inputs[0].hidden.shape
    ('model.layers', 2, torch.Size([2, 16, 64]))
    >>> linear_groups(layers[0], inputs, ["self_attn.q_proj", "self_attn.k_proj", "mlp.up_proj"])
    [['self_attn.q_proj', 'self_attn.k_proj'], ['mlp.up_proj']]
    >>> xtx, rows = input_gram(layers[0], layers[0].mlp.up_proj, inputs)
    >>> xtx.shape, rows
    (torch.Size([64, 64]), 32)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from wattlm.errors import WattlmError


@dataclass
class LayerInput:
    """One chunk of calibration sequences as a block receives it."""

    hidden: torch.Tensor
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class _Stop(Exception):
    """Raised by a hook to end a forward pass once it has what it needs."""


def _to(obj: Any, device: torch.device | None) -> Any:
    if device is None:
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def decoder_layers(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """``(name, blocks)``: the longest ``ModuleList`` of one block type (the decoder)."""
    best: tuple[str, torch.nn.ModuleList] | None = None
    for name, module in model.named_modules():
        stack = isinstance(module, torch.nn.ModuleList) and len({type(c) for c in module}) == 1
        if stack and (best is None or len(module) > len(best[1])):
            best = (name, module)
    if best is None or len(best[1]) == 0:
        raise WattlmError(f"found no stack of transformer blocks in {type(model).__name__}")
    return best


def capture_layer_inputs(
    model: torch.nn.Module,
    ids: torch.Tensor,
    *,
    batch_size: int = 8,
    device: torch.device | None = None,
) -> list[LayerInput]:
    """What the first block receives for ``ids`` (``[n, seq]``), in chunks of ``batch_size``."""
    _, layers = decoder_layers(model)
    captured: list[LayerInput] = []

    def grab(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        kwargs = dict(kwargs)
        hidden = args[0] if args else kwargs.pop("hidden_states")
        captured.append(LayerInput(_to(hidden, device), _to(args[1:], device), _to(kwargs, device)))
        raise _Stop

    model_device = next(model.parameters()).device
    handle = layers[0].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            for chunk in ids.split(batch_size):
                with contextlib.suppress(_Stop):
                    model(input_ids=chunk.to(model_device), use_cache=False)
    finally:
        handle.remove()
    return captured


def _call(layer: torch.nn.Module, x: LayerInput) -> Any:
    return layer(x.hidden, *x.args, **x.kwargs)


def run_layer(layer: torch.nn.Module, inputs: list[LayerInput]) -> list[LayerInput]:
    """The block's outputs on every chunk, packed as the next block's inputs."""
    out = []
    with torch.no_grad():
        for x in inputs:
            y = _call(layer, x)
            out.append(LayerInput(y[0] if isinstance(y, tuple) else y, x.args, x.kwargs))
    return out


def linear_groups(
    layer: torch.nn.Module, inputs: list[LayerInput], names: list[str]
) -> list[list[str]]:
    """``names`` (submodules of ``layer``) in call order, grouped when they read the same
    input tensor (q/k/v, gate/up); modules the block never calls are left out."""
    seen: list[tuple[str, torch.Tensor]] = []

    def hook(name: str):
        def record(module: torch.nn.Module, args: tuple) -> None:
            if all(name != n for n, _ in seen):
                seen.append((name, args[0]))

        return record

    handles = [layer.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        run_layer(layer, inputs[:1])
    finally:
        for h in handles:
            h.remove()
    groups: list[list[str]] = []
    for i, (name, x) in enumerate(seen):  # references held in ``seen``: no address reuse
        prev = seen[i - 1][1] if i else None
        if prev is not None and x.data_ptr() == prev.data_ptr() and x.shape == prev.shape:
            groups[-1].append(name)
        else:
            groups.append([name])
    return groups


def input_gram(
    layer: torch.nn.Module, module: torch.nn.Module, inputs: list[LayerInput]
) -> tuple[torch.Tensor, int]:
    """``(XᵀX float32 [in, in], rows)`` of what ``module`` receives while ``layer`` runs on
    ``inputs``; each pass stops as soon as ``module`` has been called."""
    state: dict[str, Any] = {"xtx": None, "rows": 0}

    def hook(mod: torch.nn.Module, args: tuple) -> None:
        x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
        if state["xtx"] is None:
            state["xtx"] = torch.zeros(x.shape[1], x.shape[1], device=x.device)
        state["xtx"].addmm_(x.t(), x)
        state["rows"] += x.shape[0]
        raise _Stop

    handle = module.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            for x in inputs:
                with contextlib.suppress(_Stop):
                    _call(layer, x)
    finally:
        handle.remove()
    if state["xtx"] is None:
        raise WattlmError(f"{type(module).__name__} was never called by its block")
    return state["xtx"], state["rows"]
