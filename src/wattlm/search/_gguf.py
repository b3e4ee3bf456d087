"""Put a GGUF file's weights, dequantized, into a torch model of the same shape.

Used so that perplexity is measured on the weights llama.cpp actually runs. The trial's
model is the one that was exported, so every tensor maps back by the exporter's own plan
(:func:`wattlm.export._gguf_tensors.plan_tensors`): read, dequantize with gguf-py, undo the
rope row permutation of Q/K, copy. This is what ``load_model(path)`` computes through
transformers, about four times faster (no config, tokenizer or model rebuilt).
"""

from __future__ import annotations

from pathlib import Path

import torch

from wattlm.errors import WattlmError


@torch.no_grad()
def load_gguf_weights_(model: torch.nn.Module, path: str | Path) -> None:
    """Overwrite ``model``'s weights (in place) with the dequantized tensors of ``path``."""
    import gguf
    from gguf.quants import dequantize

    from wattlm.export._gguf_hparams import head_counts
    from wattlm.export._gguf_tensors import plan_tensors, unpermute_rope

    cfg = model.config
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    plans = plan_tensors(model, head_counts(model, head_dim))
    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    for plan in plans:
        tensor = tensors.get(plan.name)
        if tensor is None:
            raise WattlmError(f"{path} has no tensor {plan.name}; was it exported from this model?")
        values = dequantize(tensor.data, tensor.tensor_type).reshape(plan.shape)
        if plan.rope_heads:
            values = unpermute_rope(values, plan.rope_heads)
        plan.param.copy_(torch.from_numpy(values.copy()).to(plan.param.dtype))
