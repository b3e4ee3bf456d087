"""Put a GGUF file's weights, dequantized, into a torch model of the same shape.

Used so that perplexity is measured on the weights llama.cpp actually runs. The model is
the one that was exported, so every tensor maps back by the exporter's own plan
(:func:`wattlm.export._gguf_tensors.plan_tensors`): read and dequantize
(:class:`~wattlm.export.gguf_reader.GgufTensors`), undo the rope row permutation of Q/K,
copy. This is what ``load_model(path)`` computes through transformers, about four times
faster (no config, tokenizer or model rebuilt).

Example:
    >>> from wattlm.testing.tiny import tiny_causal_lm
    >>> from wattlm.export.gguf_writer import export_gguf
    >>> import tempfile, pathlib, torch
    >>> lm = tiny_causal_lm()
    >>> path = export_gguf(lm.model, lm.tokenizer, pathlib.Path(tempfile.mkdtemp()) / "m.gguf")
    >>> copy = tiny_causal_lm(seed=1).model
    >>> load_gguf_weights_(copy, path)
    >>> a, b = copy.model.layers[0].self_attn.q_proj.weight, lm.model.model.layers[0].self_attn.q_proj.weight
    >>> torch.allclose(a, b, atol=1e-3), torch.equal(a, b)
    (True, False)
"""

from __future__ import annotations

from pathlib import Path

import torch

from wattlm.errors import WattlmError
from wattlm.export._gguf_hparams import head_counts
from wattlm.export._gguf_tensors import plan_tensors, unpermute_rope
from wattlm.export.gguf_reader import GgufTensors


@torch.no_grad()
def load_gguf_weights_(model: torch.nn.Module, path: str | Path) -> None:
    """Overwrite ``model``'s weights (in place) with the dequantized tensors of ``path``."""
    cfg = model.config
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    plans = plan_tensors(model, head_counts(model, head_dim))
    tensors = GgufTensors(path)
    for plan in plans:
        if plan.name not in tensors:
            raise WattlmError(f"{path} has no tensor {plan.name}; was it exported from this model?")
        values = tensors[plan.name].reshape(plan.shape)
        if plan.rope_heads:
            values = unpermute_rope(values, plan.rope_heads)
        plan.param.copy_(torch.from_numpy(values.copy()).to(plan.param.dtype))
