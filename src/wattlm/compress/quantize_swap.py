"""Module surgery shared by the quantization methods: find Linears, swap them, and cast a
(tied) embedding without changing the precision of the rest of the model.

Example:
    >>> from wattlm.testing.tiny import tiny_causal_lm
    >>> model = tiny_causal_lm().model
    >>> sorted(linear_modules(model, skip=("lm_head", "*.mlp.*")))[:2]
    ['model.layers.0.self_attn.k_proj', 'model.layers.0.self_attn.o_proj']
"""

from __future__ import annotations

import fnmatch

import torch


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether module ``name`` matches a glob pattern, or ends with ``"." + pattern``."""
    return any(fnmatch.fnmatch(name, p) or name.endswith("." + p) or name == p for p in patterns)


def linear_modules(
    model: torch.nn.Module, skip: tuple[str, ...] = ()
) -> dict[str, torch.nn.Linear]:
    """Every ``nn.Linear`` of ``model`` by name, except those matching ``skip``."""
    return {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and not matches(n, skip)
    }


def replace_linears(model: torch.nn.Module, new: dict[str, torch.nn.Module]) -> None:
    """Put ``new[name]`` in place of each named module. Replacing an output projection
    tied to the input embedding unties them (``config.tie_word_embeddings = False``), so
    the model is rebuilt untied when loaded again."""
    get_out = getattr(model, "get_output_embeddings", None)
    get_in = getattr(model, "get_input_embeddings", None)
    out, inp = (get_out(), get_in()) if get_out and get_in else (None, None)
    tied = out is not None and getattr(out, "weight", None) is getattr(inp, "weight", False)
    names = {m: n for n, m in model.named_modules()}
    if tied and names.get(out) in new:
        model.config.tie_word_embeddings = False
    for name, module in new.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module)


def cast_embedding(model: torch.nn.Module, dtype: torch.dtype | None) -> None:
    """Store the input embedding (and a float ``lm_head`` tied to it) in ``dtype``.

    The embedding's output is cast back to the embedding's former dtype, and the tied
    ``lm_head`` casts its input to ``dtype`` and its logits back, so every other module
    computes as before. Does nothing when ``dtype`` is None or already the embedding's.
    """
    if dtype is None or not hasattr(model, "get_input_embeddings"):
        return
    emb = model.get_input_embeddings()
    if emb.weight.dtype == dtype:
        return
    float_dtype = emb.weight.dtype
    out = model.get_output_embeddings()
    emb.weight.data = emb.weight.data.to(dtype)
    emb.register_forward_hook(lambda m, args, y: y.to(float_dtype))
    if isinstance(out, torch.nn.Linear) and out.weight is emb.weight:
        out.register_forward_pre_hook(lambda m, args: (args[0].to(dtype), *args[1:]))
        out.register_forward_hook(lambda m, args, y: y.to(float_dtype))
