"""Which parameters train: all of them, all but the embeddings, all but the embeddings and the
lower half of the layers, or LoRA adapters (through PEFT) with the base weights frozen.

Fewer trained parameters means less optimizer state and no weight gradients for the frozen
part (its activations' gradients are still needed above the lowest trained layer), so a step
can cost less; whether the cheaper steps reach a quality target in less energy is what
``wattlm train search`` measures.

LoRA adapters are injected in place (``peft.inject_adapter_in_model``), so the model keeps
its class, its ``config`` and its forward; :func:`merge_lora` folds them back into the base
weights before the model is saved, so a saved model loads without PEFT.

Example:
    >>> from wattlm.testing.tiny import tiny_classifier
    >>> model = tiny_classifier().model
    >>> total = sum(p.numel() for p in model.parameters())
    >>> info = apply_train_layers(model, "freeze-embeddings")
    >>> info["trainable"] < total, info["frozen"] + info["trainable"] == total
    (True, True)
"""

from __future__ import annotations

from typing import Any

import torch

from wattlm.errors import WattlmError
from wattlm.training.options import TRAIN_LAYERS

#: attention projections LoRA adapts (BERT, Llama/Qwen/SmolLM, GPT-2, Phi, Falcon names)
LORA_TARGETS = ("query", "value", "q_proj", "v_proj", "c_attn", "qkv_proj", "Wqkv",
                "query_key_value")  # fmt: skip
#: heads that always train (a new classifier head must learn)
HEADS = ("classifier", "score", "lm_head")


def _layer_list(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The model's stack of transformer blocks: the longest ``ModuleList``."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 1]
    return max(lists, key=len) if lists else None


def _is_head(name: str) -> bool:
    return name.split(".")[0] in HEADS


def lora_targets(model: torch.nn.Module) -> list[str]:
    """Names of the ``Linear`` (or GPT-2 ``Conv1D``) modules LoRA would adapt.

    Example:
        >>> from wattlm.testing.tiny import tiny_classifier
        >>> lora_targets(tiny_classifier().model)[:2]
        ['bert.encoder.layer.0.attention.self.query', 'bert.encoder.layer.0.attention.self.value']
    """
    out = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if name.rsplit(".", 1)[-1] in LORA_TARGETS and kind in ("Linear", "Conv1D"):
            out.append(name)
    return out


def check_lora(model: torch.nn.Module, what: str = "the model") -> None:
    """Raise a clear error when LoRA cannot apply to ``model`` (no PEFT, no target module)."""
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise WattlmError("LoRA training needs the peft package", hint='pip install "wattlm[lora]"')
    if not lora_targets(model):
        raise WattlmError(
            f"LoRA: {what} ({type(model).__name__}) has no module LoRA can adapt",
            hint=f"LoRA adapts attention projections named {', '.join(LORA_TARGETS)}; "
            "train all layers or freeze some instead",
        )


def apply_train_layers(
    model: torch.nn.Module, choice: str, *, lora_rank: int = 8, seed: int = 0
) -> dict[str, Any]:
    """Freeze (or adapt) ``model`` in place for ``choice`` (one of :data:`TRAIN_LAYERS`).

    Returns ``{"train_layers", "trainable", "frozen"}`` (parameter counts after the change).
    Heads (``classifier``, ``score``, ``lm_head``) always train, except a causal LM's tied
    output embedding, which follows the input embedding.
    """
    if choice not in TRAIN_LAYERS:
        raise WattlmError(
            f"unknown train_layers {choice!r}", hint=f"choose from: {', '.join(TRAIN_LAYERS)}"
        )
    if choice == "lora":
        _inject_lora(model, lora_rank, seed)
    elif choice != "all":
        frozen = _frozen_prefixes(model, lower=choice == "freeze-lower")
        for name, p in model.named_parameters():
            if any(name == f or name.startswith(f + ".") for f in frozen):
                p.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"train_layers": choice, "trainable": trainable, "frozen": total - trainable}


def _frozen_prefixes(model: torch.nn.Module, *, lower: bool) -> list[str]:
    names = {id(m): n for n, m in model.named_modules()}
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    out = []
    if emb is not None:
        # the whole embeddings block (word, position, type embeddings and their norm)
        name = names[id(emb)]
        parent = name.rsplit(".", 1)[0] if "." in name else name
        out.append(parent if parent.endswith("embeddings") else name)
    if lower:
        layers = _layer_list(model)
        if layers is None:
            raise WattlmError(
                f"freeze-lower: {type(model).__name__} has no stack of layers to freeze half of"
            )
        base = names[id(layers)]
        out += [f"{base}.{i}" for i in range(len(layers) // 2)]
    if not out:
        raise WattlmError(f"{type(model).__name__} has no input embeddings to freeze")
    return out


def _inject_lora(model: torch.nn.Module, rank: int, seed: int) -> None:
    check_lora(model)
    from peft import LoraConfig, inject_adapter_in_model

    targets = sorted({n.rsplit(".", 1)[-1] for n in lora_targets(model)})
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets)
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name or _is_head(name))
    tied = getattr(getattr(model, "config", None), "tie_word_embeddings", False)
    if tied and hasattr(model, "get_output_embeddings") and model.get_output_embeddings():
        model.get_output_embeddings().weight.requires_grad_(False)


def merge_lora(model: torch.nn.Module) -> int:
    """Fold injected LoRA adapters into their base layers (in place); returns how many.

    A model without adapters is left as it is (returns 0).
    """
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return 0
    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
            merged += 1
    for p in model.parameters():
        p.requires_grad_(True)
    return merged
