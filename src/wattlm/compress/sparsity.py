"""Sparsity maths shared by every pruning method (one place, so methods cannot drift).

- layer selection: glob patterns on module names (:func:`select_linears`);
- scores: ``|W|`` (magnitude) or ``|W| · ‖X_j‖₂`` (Wanda, :func:`wanda_scores`), with the
  input-activation norms gathered by forward hooks, in one pass (:func:`input_norms`) or
  block by block on the already pruned model, as Wanda does (:func:`wanda_prune_`);
- masks with an exact count of pruned weights, ties broken by position: over one tensor or
  many at once (:func:`lowest_k_masks`), per output row (:func:`row_masks`), or N:M
  (:func:`nm_mask`);
- the cubic sparsity schedule of Zhu & Gupta (2017) (:func:`cubic_schedule`);
- the measured figures: zeros / total per layer and overall (:func:`sparsity_report`).

Masks are boolean tensors shaped like the weight, ``True`` = keep.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterator

import torch

from wattlm.compress.calibrate_hooks import capture_layer_inputs, decoder_layers, run_layer
from wattlm.errors import WattlmError


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, p) or name.endswith("." + p) or name == p for p in patterns)


def select_linears(
    model: torch.nn.Module, targets: tuple[str, ...], skip: tuple[str, ...]
) -> dict[str, torch.nn.Linear]:
    """The ``nn.Linear`` modules whose name matches a ``targets`` glob and no ``skip`` glob.

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> names = select_linears(tiny_causal_lm().model, ("*mlp*",), ("*down_proj",))
        >>> sorted(names)[:2]
        ['model.layers.0.mlp.gate_proj', 'model.layers.0.mlp.up_proj']
    """
    found = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and _matches(name, targets)
        and not _matches(name, skip)
    }
    if not found:
        raise WattlmError(
            f"targets {list(targets)} (minus skip {list(skip)}) match no nn.Linear of the model",
            hint="patterns are globs on module names, e.g. '*proj', '*mlp*', 'lm_head'",
        )
    return found


def cubic_schedule(final: float, steps: int) -> list[float]:
    """Sparsity after each of ``steps`` pruning steps: ``s_t = s_f (1 - (1 - t/n)³)``.

    Example:
        >>> [round(s, 4) for s in cubic_schedule(0.5, 3)]
        [0.3519, 0.4815, 0.5]
    """
    return [final * (1.0 - (1.0 - t / steps) ** 3) for t in range(1, steps + 1)]


def lowest_k_masks(scores: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Keep-masks pruning exactly the ``k`` lowest scores over all tensors together.

    Ties at the threshold are pruned in order of position, so the count is exact.

    Example:
        >>> masks = lowest_k_masks({"a": torch.tensor([1.0, 1.0, 1.0, 2.0])}, 2)
        >>> masks["a"].tolist()
        [False, False, True, True]
    """
    flat = torch.cat([s.reshape(-1).float() for s in scores.values()])
    prune = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        threshold = flat.kthvalue(k).values
        prune = flat < threshold
        ties = (flat == threshold).nonzero().squeeze(1)
        prune[ties[: k - int(prune.sum())]] = True
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = ~prune[start : start + s.numel()].view(s.shape)
        start += s.numel()
    return out


def row_masks(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep-mask pruning the same exact number of lowest scores in every output row."""
    k = round(sparsity * scores.shape[1])
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k:
        keep.scatter_(1, scores.topk(k, dim=1, largest=False).indices, False)
    return keep


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask keeping the ``n`` highest scores of every ``m`` consecutive inputs per row.

    Example:
        >>> nm_mask(torch.tensor([[4.0, 1.0, 3.0, 2.0]]), 2, 4).tolist()
        [[True, False, True, False]]
    """
    out_f, in_f = scores.shape
    groups = scores.reshape(out_f, in_f // m, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(2, groups.topk(n, dim=2).indices, True)
    return keep.view(out_f, in_f)


def wanda_scores(weight: torch.Tensor, input_norm: torch.Tensor) -> torch.Tensor:
    """Wanda importance (Sun et al. 2023): ``|W_ij| · ‖X_j‖₂`` for input feature ``j``."""
    return weight.detach().float().abs() * input_norm.float()[None, :]


@contextlib.contextmanager
def _squared_input_sums(layers: dict[str, torch.nn.Linear]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks summing ``x²`` per input feature of each layer while the block runs."""
    sums = {n: torch.zeros(m.in_features, dtype=torch.float64) for n, m in layers.items()}

    def hook(name: str):
        def add(_module, args, _output):
            x = args[0].detach().reshape(-1, args[0].shape[-1])
            sums[name] += x.double().pow(2).sum(0).cpu()

        return add

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    try:
        yield sums
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def input_norms(
    model: torch.nn.Module,
    layers: dict[str, torch.nn.Linear],
    ids: torch.Tensor,
    batch_size: int = 4,
) -> dict[str, torch.Tensor]:
    """``‖X_j‖₂`` over every calibration token, per input feature of each layer, from one
    pass of ``model`` over ``ids`` in chunks of ``batch_size`` rows."""
    device = next(model.parameters()).device
    with _squared_input_sums(layers) as sums:
        for chunk in ids.split(batch_size):
            model(chunk.to(device))
    return {name: s.sqrt().float() for name, s in sums.items()}


@torch.no_grad()
def wanda_prune_(
    model: torch.nn.Module,
    layers: dict[str, torch.nn.Linear],
    ids: torch.Tensor,
    keep: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 4,
) -> None:
    """Prune ``layers`` by ``keep(|W| · ‖X_j‖₂)`` in Wanda's sequential order.

    The decoder runs block by block: a block's input norms are gathered on what the
    already pruned blocks before it compute, its layers are pruned, then the pruned block
    runs to feed the next one. Targeted layers outside the decoder blocks (or a model
    without a block stack) get their norms from one pass of the whole model at the end.
    """

    def prune(group: dict[str, torch.nn.Linear], norms: dict[str, torch.Tensor]) -> None:
        apply_masks_(group, {n: keep(wanda_scores(m.weight, norms[n])) for n, m in group.items()})

    try:
        prefix, blocks = decoder_layers(model)
    except WattlmError:
        prefix, blocks = "", torch.nn.ModuleList()
    todo = dict(layers)
    inputs = capture_layer_inputs(model, ids, batch_size=batch_size) if len(blocks) else []
    for i, block in enumerate(blocks):
        if not todo:
            break
        mine = {n: todo.pop(n) for n in list(todo) if n.startswith(f"{prefix}.{i}.")}
        if mine:
            with _squared_input_sums(mine) as sums:
                run_layer(block, inputs)
            prune(mine, {n: s.sqrt() for n, s in sums.items()})
        inputs = run_layer(block, inputs)
    if todo:
        prune(todo, input_norms(model, todo, ids, batch_size))


def apply_masks_(layers: dict[str, torch.nn.Linear], masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place (dense storage)."""
    with torch.no_grad():
        for name, mask in masks.items():
            layers[name].weight.mul_(mask.to(layers[name].weight.device))


def sparsity_report(layers: dict[str, torch.nn.Linear]) -> dict:
    """Exact ``zeros / total`` of each layer's weight and over all of them."""
    per_layer, zeros, total = {}, 0, 0
    for name, layer in layers.items():
        z, t = int((layer.weight == 0).sum()), layer.weight.numel()
        per_layer[name] = {"zeros": z, "total": t, "sparsity": z / t}
        zeros, total = zeros + z, total + t
    return {"sparsity": zeros / total, "zeros": zeros, "total": total, "layers": per_layer}
