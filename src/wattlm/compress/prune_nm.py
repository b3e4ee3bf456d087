"""N:M semi-structured sparsity: keep the ``n`` best of every ``m`` consecutive inputs per row.

On CPU the weights stay dense with zeros: the pattern costs quality and gains nothing
(no CPU kernel uses it). On an Ampere-or-newer CUDA GPU, 2:4 fp16/bf16 weights can be
converted to ``torch.sparse.SparseSemiStructuredTensor`` (``semi_structured=True``), which
halves the stored values and runs cuSPARSELt/CUTLASS sparse matmuls. Such weights are
tensor subclasses: call :func:`densify_` before saving a state dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from wattlm._config import check_choice, check_int
from wattlm.compress import sparsity as sp
from wattlm.compress.base import CompressConfig, CompressContext, register
from wattlm.compress.prune import DEFAULT_SKIP
from wattlm.compress.qmath import snr_db
from wattlm.errors import WattlmError

CRITERIA = ("magnitude", "wanda")
_MIN_SNR_DB = 40.0  # a converted layer must reproduce its dense output at least this well


@register("nm-sparsity")
@dataclass(frozen=True)
class NMSparsityConfig(CompressConfig):
    """Keep the ``n`` highest-scoring of every ``m`` consecutive input weights of each row.

    ``criterion="magnitude"`` scores ``|W|``; ``"wanda"`` scores ``|W| · ‖X_j‖₂`` from
    ``calibration_samples`` × ``seq_len`` train tokens (the code Wanda uses). Every targeted
    layer's ``in_features`` must be a multiple of ``m``.

    Example:
        >>> NMSparsityConfig(n=2, m=4, criterion="wanda").to_dict()["criterion"]
        'wanda'
        >>> NMSparsityConfig(n=4, m=4)
        Traceback (most recent call last):
        wattlm.errors.WattlmError: N:M sparsity needs 1 <= n < m, got 4:4 (...)
    """

    n: int = 2
    m: int = 4
    targets: tuple[str, ...] = ("*proj",)
    skip: tuple[str, ...] = DEFAULT_SKIP
    criterion: str = "magnitude"
    calibration_samples: int = 32
    seq_len: int = 256
    semi_structured: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "skip", tuple(self.skip))
        if not 1 <= self.n < self.m:
            raise WattlmError(
                f"N:M sparsity needs 1 <= n < m, got {self.n}:{self.m}", hint="e.g. n=2, m=4"
            )
        check_choice("criterion", self.criterion, CRITERIA)
        check_int("calibration_samples", self.calibration_samples)
        check_int("seq_len", self.seq_len, 2)
        if self.semi_structured and (self.n, self.m) != (2, 4):
            raise WattlmError("semi_structured kernels exist only for 2:4", hint="use n=2, m=4")


def _check_semi_structured(layers: dict[str, torch.nn.Linear]) -> None:
    weights = [layer.weight for layer in layers.values()]
    ok_dtype = all(w.dtype in (torch.float16, torch.bfloat16) for w in weights)
    if not (torch.cuda.is_available() and all(w.is_cuda for w in weights) and ok_dtype):
        raise WattlmError(
            "semi_structured needs the targeted weights on a CUDA GPU in float16/bfloat16",
            hint="move the model to CUDA and cast it first, or set semi_structured: false",
        )
    if torch.cuda.get_device_capability(weights[0].device) < (8, 0):
        raise WattlmError("semi_structured needs an Ampere (sm80) or newer GPU")


@torch.no_grad()
def to_semi_structured_(layers: dict[str, torch.nn.Linear]) -> dict[str, str]:
    """Swap each 2:4-pruned CUDA weight for a ``SparseSemiStructuredTensor``.

    A layer whose shape the kernels refuse, or whose converted output strays from the
    dense one (SNR below 40 dB on a random input), stays dense; returns ``{name: reason}``.
    """
    from torch.sparse import to_sparse_semi_structured

    kept_dense = {}
    for name, layer in layers.items():
        dense = layer.weight.detach().contiguous()
        x = torch.randn(64, layer.in_features, device=dense.device, dtype=dense.dtype)
        try:
            sparse = to_sparse_semi_structured(dense)
            snr = snr_db(
                torch.nn.functional.linear(x, dense), torch.nn.functional.linear(x, sparse)
            )
        except (RuntimeError, ValueError, NotImplementedError) as err:
            kept_dense[name] = str(err).splitlines()[0] if str(err) else type(err).__name__
            continue
        if snr < _MIN_SNR_DB:
            kept_dense[name] = f"converted output SNR {snr:.1f} dB < {_MIN_SNR_DB} dB"
            continue
        layer.weight = torch.nn.Parameter(sparse, requires_grad=False)
    return kept_dense


@torch.no_grad()
def densify_(model: torch.nn.Module) -> int:
    """Turn semi-structured weights back into plain dense tensors (before saving)."""
    from torch.sparse import SparseSemiStructuredTensor

    count = 0
    for module in model.modules():
        w = getattr(module, "weight", None)
        if isinstance(w, SparseSemiStructuredTensor):
            module.weight = torch.nn.Parameter(w.to_dense(), requires_grad=False)
            count += 1
    return count


@NMSparsityConfig.handler
def _apply(
    model: torch.nn.Module, config: NMSparsityConfig, ctx: CompressContext
) -> dict[str, Any]:
    layers = sp.select_linears(model, config.targets, config.skip)
    bad = {n: layer.in_features for n, layer in layers.items() if layer.in_features % config.m}
    if bad:
        raise WattlmError(
            f"m={config.m} does not divide the input features of {len(bad)} layer(s): "
            + ", ".join(f"{n} ({f})" for n, f in list(bad.items())[:3]),
            hint="choose m dividing every targeted layer's in_features, or skip those layers",
        )
    if config.semi_structured:
        _check_semi_structured(layers)
    if config.criterion == "wanda":
        ids = ctx.calibration_batch(config.calibration_samples, config.seq_len)
        sp.wanda_prune_(model, layers, ids, lambda s: sp.nm_mask(s, config.n, config.m))
    else:
        masks = {
            n: sp.nm_mask(m.weight.detach().abs(), config.n, config.m) for n, m in layers.items()
        }
        sp.apply_masks_(layers, masks)
    report = sp.sparsity_report(layers)
    report["pattern"] = f"{config.n}:{config.m}"
    if config.semi_structured:
        kept = to_semi_structured_(layers)
        report["semi_structured_layers"] = len(layers) - len(kept)
        report["kept_dense"] = kept
    else:
        report["note"] = "weights stored dense with zeros: same bytes, no speedup on CPU"
    return report
