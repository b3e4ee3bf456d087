"""Low-rank factorization: each targeted ``nn.Linear`` becomes two thinner ones (truncated SVD).

``W (out × in) = U S Vᵀ ≈ B · A`` with ``A = √S_r Vᵀ_r`` (``r × in``) and ``B = U_r √S_r``
(``out × r``), so ``y = B (A x) + bias`` costs ``r · (in + out)`` weights instead of
``in · out``. A layer where that is no saving is left dense and reported as skipped.

Ranks differ per layer, so the handler records them: the config it logs (``report["config"]``,
which :func:`~wattlm.compress.base.compress_` stores as the stage's config) carries ``ranks``,
and its restorer rebuilds exactly those shells. In ``rank_ratio`` mode the ranks follow from
the shapes alone, so a config with ``ranks=None`` restores too; ``energy`` mode needs them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from wattlm._config import check_fraction
from wattlm.compress.base import CompressConfig, CompressContext, register
from wattlm.compress.sparsity import select_linears
from wattlm.errors import WattlmError


class LowRankLinear(torch.nn.Module):
    """``y = b(a(x))``: ``a`` maps ``in → rank`` (no bias), ``b`` maps ``rank → out``.

    Example:
        >>> layer = LowRankLinear(8, 6, rank=2)
        >>> layer(torch.zeros(3, 8)).shape, layer.a.weight.shape, layer.b.weight.shape
        (torch.Size([3, 6]), torch.Size([2, 8]), torch.Size([6, 2]))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        *,
        bias: bool = False,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.a = torch.nn.Linear(in_features, rank, bias=False, dtype=dtype, device=device)
        self.b = torch.nn.Linear(rank, out_features, bias=bias, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


@register("lowrank")
@dataclass(frozen=True)
class LowRankConfig(CompressConfig):
    """Factorize targeted layers to rank ``rank_ratio × min(out, in)``, or to the smallest
    rank keeping ``energy`` of ``Σσ²`` (exactly one of the two). ``ranks`` (layer name →
    rank pairs; ``None`` = not chosen yet) is filled in by the handler in the config it
    logs; when set (even empty), exactly those layers get exactly those ranks.

    Example:
        >>> LowRankConfig(rank_ratio=None, energy=0.9, ranks={"mlp.up_proj": 3}).ranks
        (('mlp.up_proj', 3),)
    """

    rank_ratio: float | None = 0.5
    energy: float | None = None
    targets: tuple[str, ...] = ("*mlp*",)
    skip: tuple[str, ...] = ("lm_head", "*embed*")
    ranks: tuple[tuple[str, int], ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "skip", tuple(self.skip))
        if self.ranks is not None:
            pairs = self.ranks.items() if isinstance(self.ranks, dict) else self.ranks
            object.__setattr__(self, "ranks", tuple((str(n), int(r)) for n, r in pairs))
        if (self.rank_ratio is None) == (self.energy is None):
            raise WattlmError(
                "set exactly one of rank_ratio or energy",
                hint="rank_ratio: 0.5 keeps half the rank; energy: 0.9 keeps 90% of Σσ²",
            )
        for name in ("rank_ratio", "energy"):
            if getattr(self, name) is not None:
                check_fraction(name, getattr(self, name))
        if any(r < 1 for _, r in self.ranks or ()):
            raise WattlmError("every recorded rank must be >= 1")


def energy_rank(singular_values: torch.Tensor, energy: float) -> int:
    """Smallest ``r`` with ``Σ_{i<r} σ_i² >= energy · Σ σ²``.

    Example:
        >>> energy_rank(torch.tensor([3.0, 2.0, 1.0]), 0.9)  # 9, 13, 14 of 14
        2
    """
    cum = singular_values.double().pow(2).cumsum(0)
    r = int(torch.searchsorted(cum, energy * cum[-1])) + 1
    return min(r, singular_values.numel())


def svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD ``(U, S, Vᵀ)`` of a weight, in float32."""
    return torch.linalg.svd(weight.detach().float(), full_matrices=False)


def factorize(
    weight: torch.Tensor, rank: int, usv: tuple[torch.Tensor, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A [rank × in], B [out × rank])`` with ``B @ A`` the best rank-``rank`` approximation
    (Eckart–Young); ``usv`` reuses an SVD already computed."""
    u, s, vh = usv if usv is not None else svd(weight)
    root = s[:rank].sqrt()
    return root[:, None] * vh[:rank], u[:, :rank] * root


def _saves(layer: torch.nn.Linear, rank: int) -> bool:
    return rank * (layer.in_features + layer.out_features) < layer.in_features * layer.out_features


def _ratio_rank(layer: torch.nn.Linear, ratio: float) -> int:
    return max(1, round(ratio * min(layer.in_features, layer.out_features)))


def _replace(model: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _shell(layer: torch.nn.Linear, rank: int) -> LowRankLinear:
    w = layer.weight
    return LowRankLinear(
        layer.in_features,
        layer.out_features,
        rank,
        bias=layer.bias is not None,
        dtype=w.dtype,
        device=w.device,
    )


@LowRankConfig.handler
@torch.no_grad()
def _apply(model: torch.nn.Module, config: LowRankConfig, ctx: CompressContext) -> dict[str, Any]:
    recorded = dict(config.ranks or ())
    layers = select_linears(model, config.targets, config.skip)
    unknown = sorted(set(recorded) - set(layers))
    if unknown:
        raise WattlmError(f"recorded ranks name layers not targeted here: {unknown[:3]}")
    ranks, skipped, before, after = {}, {}, 0, 0
    for name, layer in layers.items():
        dense, thin = layer.in_features * layer.out_features, layer.in_features + layer.out_features
        before += dense
        usv = None
        if config.ranks is not None:  # replay recorded ranks exactly
            rank = recorded.get(name)
            if rank is not None and rank > min(layer.in_features, layer.out_features):
                raise WattlmError(f"recorded rank {rank} of {name} exceeds its shape")
        elif config.rank_ratio is not None:
            rank = _ratio_rank(layer, config.rank_ratio)
        else:
            usv = svd(layer.weight)
            rank = energy_rank(usv[1], config.energy)
        if rank is not None and config.ranks is None and not _saves(layer, rank):
            skipped[name] = f"rank {rank}: {rank * thin} weights >= {dense} dense"
            rank = None
        if rank is None:
            after += dense
            continue
        a, b = factorize(layer.weight, rank, usv)
        new = _shell(layer, rank)
        new.a.weight.copy_(a)
        new.b.weight.copy_(b)
        if layer.bias is not None:
            new.b.bias.copy_(layer.bias)
        _replace(model, name, new)
        ranks[name] = rank
        after += rank * thin
    logged = dataclasses.replace(config, ranks=tuple(ranks.items()))
    return {
        "config": logged.to_dict(),
        "ranks": ranks,
        "skipped": skipped,
        "weights_before": before,
        "weights_after": after,
    }


@LowRankConfig.restorer
def _restore(model: torch.nn.Module, config: LowRankConfig) -> None:
    if config.ranks is not None:
        ranks = dict(config.ranks)
    else:
        if config.energy is not None:
            raise WattlmError(
                "an energy-mode lowrank config without recorded ranks cannot be restored",
                hint="restore with the config compress_ logged (it lists each layer's rank)",
            )
        layers = select_linears(model, config.targets, config.skip)
        ranks = {n: _ratio_rank(m, config.rank_ratio) for n, m in layers.items()}
        ranks = {n: r for n, r in ranks.items() if _saves(layers[n], r)}
    for name, rank in ranks.items():
        layer = model.get_submodule(name)
        if not isinstance(layer, torch.nn.Linear):
            raise WattlmError(f"cannot restore low-rank layer {name}: it is not an nn.Linear")
        _replace(model, name, _shell(layer, rank))
