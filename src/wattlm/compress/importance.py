"""Importance scores for structured pruning, in one place (so methods cannot drift).

Weight criteria give one score per element, which :func:`weight_importance` sums over the
units a method removes (rows = output channels, columns = input channels, or everything):

- ``"l1"``: ``|w|``;
- ``"l2"``: ``w²`` (a unit's sum is its squared L2 norm: same order as the norm);
- ``"taylor"``: ``|w · ∂L/∂w|``, the first-order Taylor estimate of how much the loss
  changes when ``w`` is zeroed (Molchanov et al. 2019; LLM-Pruner), with ``L`` the
  causal-LM loss of one calibration sequence, summed over the sequences;
- ``"activation"``: what a unit writes, measured on calibration text: for input column
  ``j`` of a linear layer, ``‖X_j‖₂² · ‖W[:, j]‖₂²`` (the squared Frobenius norm of the
  column's contribution to the output; Wanda's ``|W|·‖X‖`` for whole columns, as in
  Wanda-sp / FLAP). Only column targets (``o_proj``/``down_proj`` inputs) score; row
  targets score zero, so a head or channel is judged by its output alone.

The layer criterion :func:`angular_distances` is the block influence of ShortGPT (Men et
al. 2024) / the angular distance of Gromov et al. (2024): the mean over tokens of
``arccos(cos(x_in, x_out)) / π`` between a decoder layer's input and output.
"""

from __future__ import annotations

import torch

from wattlm.compress.sparsity import input_norms
from wattlm.errors import WattlmError

WEIGHT_CRITERIA = ("l1", "l2", "taylor", "activation")

#: name -> (tensor, dim kept): 0 = one score per row, 1 = per column, None = one scalar
Targets = dict[str, tuple[torch.Tensor, int | None]]


def _reduce(scores: torch.Tensor, keep: int | None) -> torch.Tensor:
    if keep is None:
        return scores.sum()
    if scores.ndim == 1:
        return scores
    return scores.sum(dim=[d for d in range(scores.ndim) if d != keep])


def weight_importance(
    model: torch.nn.Module,
    targets: Targets,
    criterion: str,
    ids: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Float32 importance of each target, reduced to its kept dimension.

    ``ids`` (token ids ``[n, seq_len]``) are needed by ``"taylor"`` and ``"activation"``.

    Example:
        >>> lin = torch.nn.Linear(3, 2)
        >>> with torch.no_grad():
        ...     _ = lin.weight.copy_(torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.5, 0.5]]))
        >>> weight_importance(lin, {"w": (lin.weight, 0)}, "l1")["w"]
        tensor([3.0000, 1.5000])
    """
    if criterion == "l1":
        return {n: _reduce(t.detach().float().abs(), k) for n, (t, k) in targets.items()}
    if criterion == "l2":
        return {n: _reduce(t.detach().float().pow(2), k) for n, (t, k) in targets.items()}
    if criterion in ("taylor", "activation") and ids is None:
        raise WattlmError(f"{criterion} importance needs calibration token ids")
    if criterion == "taylor":
        return taylor_importance(model, targets, ids)
    if criterion == "activation":
        return activation_importance(model, targets, ids)
    raise WattlmError(
        f"unknown importance criterion {criterion!r}", hint=f"choose from: {WEIGHT_CRITERIA}"
    )


def taylor_importance(
    model: torch.nn.Module, targets: Targets, ids: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``Σ_sequences |w · ∂L/∂w|`` reduced per target; only the targets get gradients."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    was_training = model.training
    device = params[0].device
    totals = {n: torch.zeros(()) for n in targets}
    try:
        model.eval()  # no dropout: the loss of the model as it will run
        for p in params:
            p.requires_grad_(False)
        for t, _ in targets.values():
            t.requires_grad_(True)
        with torch.enable_grad():
            for seq in ids.to(device):
                seq = seq[None]
                model(input_ids=seq, labels=seq).loss.backward()
                for n, (t, k) in targets.items():
                    totals[n] = totals[n] + _reduce((t.detach() * t.grad).float().abs(), k).cpu()
                    t.grad = None
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
        for t, _ in targets.values():
            t.grad = None
        model.train(was_training)
    return totals


def activation_importance(
    model: torch.nn.Module, targets: Targets, ids: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``‖X_j‖₂² · ‖W[:, j]‖₂²`` for column targets of ``nn.Linear`` weights; zeros otherwise."""
    owners = {id(m.weight): m for m in model.modules() if isinstance(m, torch.nn.Linear)}
    columns = {
        n: owners[id(t)] for n, (t, keep) in targets.items() if keep == 1 and id(t) in owners
    }
    norms = input_norms(model, columns, ids)
    return {
        n: norms[n].pow(2) * t.detach().float().pow(2).sum(0)
        if n in columns
        else _reduce(torch.zeros(t.shape), keep)
        for n, (t, keep) in targets.items()
    }


def _hidden(args: tuple, kwargs: dict, output) -> tuple[torch.Tensor, torch.Tensor]:
    x_in = args[0] if args else kwargs["hidden_states"]
    x_out = output[0] if isinstance(output, tuple) else output
    return x_in, x_out


@torch.no_grad()
def angular_distances(
    model: torch.nn.Module, layers: torch.nn.ModuleList, ids: torch.Tensor, batch: int = 4
) -> list[float]:
    """Mean angular distance (in [0, 1]) between each layer's input and output hidden states.

    A layer that barely turns the residual stream (distance near 0) is the cheapest to drop.

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> m = tiny_causal_lm().model
        >>> d = angular_distances(m, m.model.layers, torch.randint(0, 300, (2, 8)))
        >>> len(d), all(0.0 <= x <= 1.0 for x in d)
        (2, True)
    """
    sums = [0.0] * len(layers)
    count = 0

    def hook(i: int):
        def record(module, args, kwargs, output) -> None:
            x_in, x_out = _hidden(args, kwargs, output)
            cos = torch.nn.functional.cosine_similarity(x_in.float(), x_out.float(), dim=-1)
            sums[i] += float((torch.arccos(cos.clamp(-1.0, 1.0)) / torch.pi).sum())

        return record

    handles = [
        layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)
    ]
    device = next(model.parameters()).device
    try:
        for chunk in ids.to(device).split(batch):
            model(input_ids=chunk, use_cache=False)
            count += chunk.numel()
    finally:
        for h in handles:
            h.remove()
    return [s / count for s in sums]
