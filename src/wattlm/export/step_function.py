"""The KV-cache step function that the ONNX (torch route) and OpenVINO exports trace.

``(input_ids, attention_mask, *past) -> (logits, *present)``: ``input_ids``
``[batch, seq]``, ``attention_mask`` ``[batch, past + seq]`` (all ones: no padding), past
and present ``[batch, kv_heads, length, head_dim]`` ordered layer 0 key, layer 0 value,
layer 1 key…; ``logits`` ``[batch, 1, vocab]``, the last position only. Its names are
:func:`io_names`; :func:`example_inputs` gives a tracer example sizes and the dimensions
that stay symbolic.

Example:
    >>> from wattlm.testing.tiny import tiny_causal_lm
    >>> lm = tiny_causal_lm()
    >>> args, shapes = example_inputs(lm.model.config)
    >>> logits, *present = StepModule(lm.model)(*args)
    >>> tuple(logits.shape), tuple(present[0].shape), len(present) == len(args) - 2
    ((2, 1, 320), (2, 2, 8, 16), True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["StepModule", "example_inputs", "io_names", "kv_shape", "logit_gap"]


class StepModule(torch.nn.Module):
    """One forward step with the KV cache as flat tensors: ``(ids, mask, *past) ->
    (logits, *present)``, past/present ordered layer 0 key, layer 0 value, layer 1 key…"""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, *past):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i, layer in enumerate(cache.layers[: len(past) // 2]):
            # the past tensors become the layer's cache as they are: ``update`` would first
            # concatenate them onto an empty 1-D tensor, which traces to a rank-changing
            # Concat that OpenVINO's converters refuse
            layer.lazy_initialization(past[2 * i], past[2 * i + 1])
            layer.keys, layer.values = past[2 * i], past[2 * i + 1]
        start = past[0].shape[2]
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=positions.unsqueeze(0).expand(input_ids.shape[0], -1),
            use_cache=True,
            logits_to_keep=1,
        )
        flat = [t for layer in out.cache.layers for t in (layer.keys, layer.values)]
        return (out.logits, *flat)


def io_names(layers: int) -> tuple[list[str], list[str]]:
    """Input and output names of the step function of a ``layers``-layer model.

    Example:
        >>> io_names(1)
        (['input_ids', 'attention_mask', 'past_key_values.0.key', 'past_key_values.0.value'], ['logits', 'present.0.key', 'present.0.value'])
    """
    kv = [(i, k) for i in range(layers) for k in ("key", "value")]
    inputs = ["input_ids", "attention_mask"] + [f"past_key_values.{i}.{k}" for i, k in kv]
    return inputs, ["logits"] + [f"present.{i}.{k}" for i, k in kv]


def kv_shape(config: Any) -> tuple[int, int]:
    """(key/value heads, head dimension) of a transformers config."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return getattr(config, "num_key_value_heads", None) or heads, head_dim


def example_inputs(config: Any) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """Example arguments of :class:`StepModule` for ``torch.export`` (batch 2, 5 new
    tokens after 3 cached: sizes above 1, so they stay symbolic) and its dynamic shapes."""
    layers = config.num_hidden_layers
    kv_heads, head_dim = kv_shape(config)
    batch, past = 2, 3
    args = (
        torch.ones(batch, 5, dtype=torch.long),
        torch.ones(batch, past + 5, dtype=torch.long),
        *[torch.zeros(batch, kv_heads, past, head_dim) for _ in range(2 * layers)],
    )
    b, s, p = (torch.export.Dim(n) for n in ("batch", "sequence", "past_sequence"))
    shapes = {
        "input_ids": {0: b, 1: s},
        "attention_mask": {0: b, 1: torch.export.Dim.AUTO},
        "past": tuple({0: b, 2: p} for _ in range(2 * layers)),
    }
    return args, shapes


def logit_gap(
    lm: Any, run: Callable[[dict[str, Any]], Any], inputs: Iterable[str], tokens: int = 8
) -> tuple[float, float]:
    """Largest |runtime logit - torch logit|, and largest |torch logit|, at the last
    position of a fixed prompt: how an export is checked against the model it came from.

    ``run(feeds)`` runs the exported step function (its logits ``[1, positions, vocab]``);
    ``inputs`` are its input names, whose ``past_key_values.*`` get an empty cache.

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> lm = tiny_causal_lm()
        >>> def run(feeds):  # torch itself as the "runtime": no gap
        ...     with torch.no_grad():
        ...         return lm.model(torch.from_numpy(feeds["input_ids"])).logits.numpy()
        >>> logit_gap(lm, run, ["input_ids", "attention_mask"])[0]
        0.0
    """
    import numpy as np

    config = lm.model.config
    ids = (torch.arange(tokens) * 7 + 3) % config.vocab_size
    with torch.no_grad():
        ref = lm.model(ids[None].to(lm.model.device)).logits[0, -1].float().cpu().numpy()
    kv_heads, head_dim = kv_shape(config)
    feeds = {"input_ids": ids[None].numpy(), "attention_mask": np.ones((1, tokens), np.int64)}
    for name in inputs:
        if name.startswith("past_key_values."):
            feeds[name] = np.zeros((1, kv_heads, 0, head_dim), np.float32)
    got = np.asarray(run(feeds))[0, -1]
    return float(np.abs(got - ref).max()), float(np.abs(ref).max())
