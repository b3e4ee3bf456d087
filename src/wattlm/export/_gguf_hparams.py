"""Llama hyperparameters for GGUF, read from the model's modules and ``model.config``.

Example:
    >>> from wattlm.testing.tiny import tiny_causal_lm
    >>> model = tiny_causal_lm().model
    >>> head_counts(model, 16), architecture(model, head_counts(model, 16))
    ([(4, 2), (4, 2)], 'llama')
"""

from __future__ import annotations

from typing import Any

import gguf

from wattlm.errors import WattlmError


def check_llama(model: Any) -> None:
    """Refuse anything but a Llama causal LM whose config agrees with its layers."""
    cfg = getattr(model, "config", None)
    if getattr(cfg, "model_type", None) != "llama" or not hasattr(model, "lm_head"):
        raise WattlmError(
            f"GGUF export supports Llama causal LMs, got {type(model).__name__} "
            f"(model_type {getattr(cfg, 'model_type', None)!r})"
        )
    if cfg.num_hidden_layers != len(model.model.layers):
        raise WattlmError(
            f"config.num_hidden_layers={cfg.num_hidden_layers} but the model has "
            f"{len(model.model.layers)} layers",
            hint="set config.num_hidden_layers (and each attention's layer_idx) after "
            "removing layers",
        )


def head_counts(model: Any, head_dim: int) -> list[tuple[int, int]]:
    """``(n_head, n_kv_head)`` of each layer, from its q/k projection shapes."""
    heads = []
    for i, layer in enumerate(model.model.layers):
        att = layer.self_attn
        q_rows, kv_rows = att.q_proj.weight.shape[0], att.k_proj.weight.shape[0]
        n_head, n_kv = q_rows // head_dim, kv_rows // head_dim
        if q_rows % head_dim or kv_rows % head_dim or not n_kv or n_head % n_kv:
            raise WattlmError(
                f"layer {i}: q_proj has {q_rows} rows and k_proj {kv_rows}, which are not "
                f"whole heads of {head_dim} with a whole number of query heads per KV head"
            )
        heads.append((n_head, n_kv))
    return heads


def _rope_theta(cfg: Any) -> float:
    rope = dict(getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {})
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default":
        raise WattlmError(
            f"rope scaling {kind!r} is not supported by this exporter",
            hint="only plain rope (rope_type 'default') Llama models are exported",
        )
    return float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))


def _one_or_all(values: list[int]) -> int | list[int]:
    return values[0] if len(set(values)) == 1 else values


def _ffn_sizes(model: Any) -> list[int]:
    return [layer.mlp.gate_proj.weight.shape[0] for layer in model.model.layers]


def architecture(model: Any, heads: list[tuple[int, int]]) -> str:
    """``llama``; ``deci`` (llama.cpp's Llama with per-layer sizes) when layers differ."""
    return "llama" if len(set(heads)) == 1 and len(set(_ffn_sizes(model))) == 1 else "deci"


def write_hparams(w: gguf.GGUFWriter, model: Any, heads: list[tuple[int, int]], head_dim: int):
    cfg = model.config
    w.add_name(str(getattr(cfg, "_name_or_path", "") or "wattlm export"))
    w.add_context_length(int(cfg.max_position_embeddings))
    w.add_embedding_length(int(cfg.hidden_size))
    w.add_block_count(len(heads))
    w.add_feed_forward_length(_one_or_all(_ffn_sizes(model)))
    w.add_head_count(_one_or_all([h for h, _ in heads]))
    w.add_head_count_kv(_one_or_all([kv for _, kv in heads]))
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(_rope_theta(cfg))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_vocab_size(int(model.model.embed_tokens.weight.shape[0]))
