"""Losses: the task's own (:class:`TaskLoss`, fine-tuning and healing) and distillation's
(soft targets at a temperature, hard labels, hidden states).

Example:
    >>> import torch
    >>> s, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    >>> float(kd_loss(s, t, temperature=2.0))  # identical distributions: no divergence
    0.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``T² · mean KL(softmax(t/T) ‖ softmax(s/T))`` over positions (Hinton et al. 2015).

    Logits are ``[..., classes]``; the KL is summed over classes and averaged over every
    other position (samples, or samples × tokens), keeping only positions where ``mask``
    (shaped like the logits without the last dim) is true. The ``T²`` keeps the gradient
    scale independent of ``T``. Computed in float32 whatever the autocast dtype.
    """
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = (t.exp() * (t - s)).sum(dim=-1)
    if mask is not None:
        kl = kl[mask.bool()]
    return kl.mean() * temperature**2


def hard_loss(logits: torch.Tensor, labels: torch.Tensor, *, causal: bool) -> torch.Tensor:
    """Cross-entropy against the true labels: per sample for a classifier, next token for a
    causal LM (position i predicts label i+1; ``-100`` labels are ignored)."""
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1))


def hidden_loss(
    student_hidden: tuple[torch.Tensor, ...],
    teacher_hidden: tuple[torch.Tensor, ...],
    layer_map: list[int],
    projection: torch.nn.Module,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over student layers ``j`` of ``MSE(projection(h_s[j]), h_t[layer_map[j]])``.

    ``*_hidden`` are the models' ``output_hidden_states`` (index 0 is the embedding
    output, index ``i + 1`` the output of layer ``i``); ``layer_map[j]`` is the teacher
    layer student layer ``j`` learns to imitate. ``projection`` maps the student's width to
    the teacher's (``nn.Identity`` when equal). ``mask`` ``[batch, seq]`` drops padding.
    """
    total = student_hidden[0].new_zeros((), dtype=torch.float32)
    for j, i in enumerate(layer_map):
        hs = projection(student_hidden[j + 1]).float()
        ht = teacher_hidden[i + 1].float()
        err = (hs - ht).pow(2).mean(dim=-1)
        total = total + (err[mask.bool()] if mask is not None else err).mean()
    return total / len(layer_map)


class TaskLoss(torch.nn.Module):
    """The loss module of fine-tuning: the model's own loss (classification cross-entropy,
    or next-token cross-entropy for a causal LM)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": self.model(**inputs).loss}
