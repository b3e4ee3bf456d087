"""LoRA adapters (PEFT) so that only the adapters and the classification head train and
travel; the frozen body never leaves the clients after the first download.

Example:
    >>> from wattlm.testing.tiny import tiny_classifier
    >>> from wattlm.federate.config import FederateConfig
    >>> lm = tiny_classifier()
    >>> check_targets(lm.model, ("query", "value"))
    >>> check_targets(lm.model, ("q_proj",))
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: LoRA target(s) q_proj are not modules of this model (LoRA needs linear layers by name: e.g. --lora-targets classifier,dense,key,query)
"""

from __future__ import annotations

import torch

from wattlm.errors import WattlmError


def linear_names(model: torch.nn.Module) -> list[str]:
    """Last name parts of the model's linear layers (what ``--lora-targets`` may name)."""
    return sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    )


def check_targets(model: torch.nn.Module, targets: tuple[str, ...]) -> None:
    """Raise when a target names no linear layer of ``model``."""
    have = linear_names(model)
    missing = [t for t in targets if t not in have] or ([] if targets else ["(none)"])
    if missing:
        raise WattlmError(
            f"LoRA target(s) {', '.join(missing)} are not modules of this model",
            hint=f"LoRA needs linear layers by name: e.g. --lora-targets {','.join(have[:4])}",
        )


def add_lora(lm, config, task: str = "sequence-classification") -> None:
    """Wrap ``lm.model`` with LoRA (rank ``config.lora_rank``) on ``config.lora_targets``;
    a classification head stays fully trainable."""
    check_targets(lm.model, config.lora_targets)
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise WattlmError("--lora needs PEFT", hint="pip install 'wattlm[federate]'") from None
    peft_config = LoraConfig(
        r=config.lora_rank,
        lora_alpha=2 * config.lora_rank,
        target_modules=list(config.lora_targets),
        task_type="SEQ_CLS" if task == "sequence-classification" else "CAUSAL_LM",
    )
    torch.manual_seed(config.seed)
    lm.model = get_peft_model(lm.model, peft_config)
