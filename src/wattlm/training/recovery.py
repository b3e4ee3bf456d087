"""Recovery fine-tuning after pruning: train with the pruned weights held at exactly zero.

:class:`SparsityMasks` records which weights of the ``nn.Linear`` layers are zero when
training starts (what pruning left) and re-applies that mask after every optimizer step.
Re-applying after the step, rather than only masking gradients, also undoes what weight
decay and optimizer momentum would otherwise move off zero. The sparsity after training
equals the sparsity before, weight for weight.

Use it with ``wattlm train finetune --keep-sparsity`` (the heal stage of prune → heal), or
in Python through ``after_step``:

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(4, 4)
    >>> with torch.no_grad():
    ...     layer.weight[:, :2] = 0
    >>> masks = SparsityMasks.from_zeros(torch.nn.Sequential(layer))
    >>> masks.sparsity()
    0.5
    >>> with torch.no_grad():
    ...     _ = layer.weight.add_(1.0)  # an optimizer step moves the pruned weights
    >>> masks.apply_()
    >>> masks.sparsity()
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wattlm.errors import WattlmError


@dataclass
class SparsityMasks:
    """Keep-masks (``True`` = trainable weight) of the sparse Linear layers of a model."""

    weights: dict[str, torch.nn.Parameter]
    masks: dict[str, torch.Tensor]

    @classmethod
    def from_zeros(cls, model: torch.nn.Module, *, min_sparsity: float = 0.05) -> SparsityMasks:
        """Masks of every ``nn.Linear`` weight with more than ``min_sparsity`` zeros (a
        layer with a handful of zeros, e.g. a tied output embedding whose padding row is
        zero, was not pruned and trains freely)."""
        weights, masks = {}, {}
        for name, module in model.named_modules():
            w = getattr(module, "weight", None)
            if not isinstance(module, torch.nn.Linear) or not isinstance(w, torch.nn.Parameter):
                continue
            keep = w.detach() != 0
            if (1.0 - keep.float().mean().item()) > min_sparsity:
                weights[name], masks[name] = w, keep
        if not masks:
            raise WattlmError(
                "--keep-sparsity: the model has no zero weights to keep",
                hint="prune it first (wattlm compress with a pruning recipe)",
            )
        return cls(weights, masks)

    @torch.no_grad()
    def apply_(self) -> None:
        """Set every masked weight back to zero."""
        for name, w in self.weights.items():
            w.mul_(self.masks[name].to(w.device))

    def sparsity(self) -> float:
        """Fraction of zero weights over the masked layers, as they are now."""
        zeros = sum(int((w == 0).sum()) for w in self.weights.values())
        return zeros / sum(w.numel() for w in self.weights.values())
