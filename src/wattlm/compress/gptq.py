"""GPTQ (Frantar et al. 2022): calibrated rounding of weights to the int4 / int8 grid.

Each Linear inside the decoder blocks is quantized column by column; the rounding error
of each column is pushed onto the columns not yet quantized, weighted by the inverse of
``H = 2XᵀX/n`` (``X``: the layer's inputs on train-split calibration text), so the layer's
*output* on that text moves less than with round-to-nearest. Blocks are processed in
order: block ``i + 1`` is calibrated on what the already quantized block ``i`` computes.

The result stays a float model whose weights lie exactly on a ``qmath`` grid (int4:
asymmetric, group-wise, min/max scales, float or integer zero point; int8: symmetric per
channel). GPTQ keeps, in each group, the element that set the minimum (maximum) at the
grid's end, so the following stage re-derives the same scales and stores the weights
losslessly. Recipe: ``gptq`` → ``int4-weight`` with the same ``group_size`` and
``zero_point`` (``int`` here is lossless under either there), or ``gptq bits=8`` →
``int8-weight``. Run it on a float32 model (cast afterwards).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from wattlm._config import check_fraction, check_int
from wattlm._progress import steps
from wattlm.compress import calibrate_hooks as hooks
from wattlm.compress import qmath
from wattlm.compress.base import CompressConfig, CompressContext, register
from wattlm.compress.quantize_swap import linear_modules, matches
from wattlm.errors import WattlmError


@register("gptq")
@dataclass(frozen=True)
class GptqConfig(CompressConfig):
    """GPTQ rounding of every Linear in the decoder blocks, except modules matching ``skip``.

    ``bits=4``: int4 group-wise grid (``group_size`` input features per scale/zero;
    ``zero_point`` ``"float"``, the group minimum as ``int4-weight`` keeps it by default,
    or ``"int"``, qmath's rounded one); ``bits=8``: int8 per-channel symmetric grid
    (``group_size`` and ``zero_point`` unused). ``damp`` is the
    fraction of the mean Hessian diagonal added to it; ``act_order`` quantizes columns in
    order of decreasing ``diag(H)`` (groups stay contiguous: their grids are then fixed
    from the original weights). The embeddings / ``lm_head`` are never touched.

    Example:
        >>> GptqConfig(group_size=64).to_dict()["group_size"]
        64
        >>> GptqConfig(bits=3)
        Traceback (most recent call last):
        wattlm.errors.WattlmError: GPTQ supports bits=4 or bits=8, got 3 (...)
    """

    bits: int = 4
    group_size: int = 32
    zero_point: str = "float"
    calibration_samples: int = 32
    seq_len: int = 256
    damp: float = 0.01
    act_order: bool = False
    skip: tuple[str, ...] = ("lm_head",)

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise WattlmError(
                f"GPTQ supports bits=4 or bits=8, got {self.bits}",
                hint="4: int4 group-wise (then int4-weight); 8: int8 per channel (int8-weight)",
            )
        check_int("group_size", self.group_size)
        if self.zero_point not in ("float", "int"):
            raise WattlmError(
                f"zero_point {self.zero_point!r} is not supported",
                hint="'float' (group minimum kept exactly) or 'int' (qmath's integer zero)",
            )
        check_int("calibration_samples", self.calibration_samples)
        check_int("seq_len", self.seq_len, 2)
        check_fraction("damp", self.damp, "e.g. 0.01")
        object.__setattr__(self, "skip", tuple(self.skip))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """CPU ops on one thread inside the block (on a busy CPU, 2 threads were 40× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _inverse_cholesky(h: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + λI)⁻¹``; λ grows tenfold while H is not definite."""
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    lam = damp * torch.diagonal(h).mean()
    for _ in range(6):
        low, info = torch.linalg.cholesky_ex(h + lam * eye)
        if not info:
            upper, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(low), upper=True)
            if not info:
                return upper
        lam = lam * 10
    raise WattlmError("GPTQ Hessian is not positive definite", hint="raise damp or samples")


def _int4_grid(wt: torch.Tensor, g: int, grid: dict[str, torch.Tensor], start: int = 0) -> None:
    """Fill rows ``start:`` of the transposed grids from ``wt`` (``[k*g, out]``) in place,
    pinning each group's min (max) element to code 0 (15): the grid's own ends."""
    if "zero" in grid:  # qmath's integer zero point: w = (q - zero) * scale
        _, s, z = qmath.quantize_int4_groupwise(wt.t(), g)
    else:  # float zero point: w = q * scale + offset (offset = the group minimum)
        _, s, z = qmath.quantize_int4_groupwise_float_zero(wt.t(), g)
    groups = wt.reshape(-1, g, wt.shape[1])  # [k, g, out]
    spread = (groups.amax(1) > groups.amin(1)).t()  # [out, k]: a real range to pin
    rows = torch.arange(wt.shape[1], device=wt.device)
    for k in range(groups.shape[0]):
        sl, cols = slice(start + k * g, start + (k + 1) * g), rows[spread[:, k]]
        grid["scale"][sl] = s[:, k]
        grid["zero" if "zero" in grid else "offset"][sl] = z[:, k]
        grid["pin_lo"][sl][groups[k].argmin(0)[spread[:, k]], cols] = True
        grid["pin_hi"][sl][groups[k].argmax(0)[spread[:, k]], cols] = True


@_one_thread()  # one op per column, each too small to share: threads only add waiting
def gptq_quantize(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    *,
    bits: int = 4,
    group_size: int = 32,
    zero_point: str = "float",
    damp: float = 0.01,
    act_order: bool = False,
) -> torch.Tensor:
    """GPTQ-rounded copy of ``weight`` (``[out, in]``, float32, on the ``qmath`` grid).

    Example:
        >>> x = torch.randn(256, 64) @ torch.randn(64, 64)  # correlated inputs
        >>> w = torch.randn(16, 64)
        >>> q = gptq_quantize(w, 2 * x.t() @ x / 256, group_size=32, zero_point="int")
        >>> err = lambda v: float((x @ (v - w).t()).pow(2).sum())
        >>> err(q) < err(qmath.fake_quantize_int4(w, 32))
        True
    """
    wt = weight.detach().float().t().clone()  # [in, out]: a column of W is a row here
    h = hessian.detach().float().clone()
    n_in, n_out = wt.shape
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0
    wt[dead] = 0.0
    perm = torch.argsort(torch.diagonal(h), descending=True) if act_order else None
    grid = {k: torch.zeros_like(wt) for k in ("scale", "zero", "offset")}
    grid |= {k: torch.zeros_like(wt, dtype=torch.bool) for k in ("pin_lo", "pin_hi")}
    if bits == 8:  # symmetric per channel, its largest |w| pinned to ±127
        qmin, qmax, block, dynamic = -127, 127, 128, False
        grid["scale"][:] = qmath.quantize_int8_per_channel(wt.t())[1]
        top, cols = wt.abs().argmax(0), torch.arange(n_out, device=wt.device)
        peak = wt[top, cols]
        grid["pin_lo"][top[peak < 0], cols[peak < 0]] = True
        grid["pin_hi"][top[peak > 0], cols[peak > 0]] = True
    else:
        qmath.check_group_size(n_in, group_size)
        qmin, qmax, block = 0, 15, group_size * max(1, 128 // group_size)
        del grid["zero" if zero_point == "float" else "offset"]
        dynamic = perm is None  # act_order: grids fixed from the original weights
        if not dynamic:
            _int4_grid(wt, group_size, grid)
    if perm is not None:
        wt, h = wt[perm], h[perm][:, perm]
        grid = {k: v[perm] for k, v in grid.items()}
    scale, pin_lo, pin_hi = grid["scale"], grid["pin_lo"], grid["pin_hi"]
    zero, offset = grid.get("zero", torch.zeros_like(wt)), grid.get("offset", torch.zeros_like(wt))
    hinv = _inverse_cholesky(h, damp)
    out = torch.empty_like(wt)
    for b0 in range(0, n_in, block):
        b1 = min(b0 + block, n_in)
        w1, hinv1 = wt[b0:b1].clone(), hinv[b0:b1, b0:b1]
        err1 = torch.empty_like(w1)
        for i in range(b1 - b0):
            j = b0 + i
            if dynamic and j % group_size == 0:
                _int4_grid(w1[i : i + group_size], group_size, grid, j)
            w = w1[i]
            q = torch.clamp(torch.round((w - offset[j]) / scale[j] + zero[j]), qmin, qmax)
            q = torch.where(pin_lo[j], qmin, torch.where(pin_hi[j], qmax, q))
            out[j] = (q - zero[j]) * scale[j] + offset[j]
            err1[i] = (w - out[j]) / hinv1[i, i]
            w1[i:].addr_(hinv1[i, i:], err1[i], alpha=-1)
        wt[b1:] -= hinv[b0:b1, b1:].t() @ err1
    if perm is not None:
        out = out[torch.argsort(perm)]
    return out.t().contiguous()


def _rtn(weight: torch.Tensor, config: GptqConfig) -> torch.Tensor:
    if config.bits == 8:
        return qmath.dequantize_int8(*qmath.quantize_int8_per_channel(weight))
    if config.zero_point == "int":
        return qmath.fake_quantize_int4(weight.float(), config.group_size)
    q = qmath.quantize_int4_groupwise_float_zero(weight, config.group_size)
    return qmath.dequantize_int4_float_zero(*q, config.group_size)


def _output_error(weight: torch.Tensor, approx: torch.Tensor, h: torch.Tensor) -> float:
    """``tr(E H Eᵀ)``: the squared output error on the calibration inputs (up to 2/n)."""
    e = approx.float() - weight.float()
    return float(((e @ h) * e).sum())


def _targets(model: torch.nn.Module, config: GptqConfig) -> list[list[str]]:
    """Per block, the names (inside the block) of the Linear layers to quantize."""
    prefix, layers = hooks.decoder_layers(model)
    names = [n for n, _ in model.named_modules()]
    for pattern in config.skip:
        if not any(matches(n, (pattern,)) for n in names):
            raise WattlmError(f"skip pattern {pattern!r} matches no module of the model")
    out: list[list[str]] = [[] for _ in layers]
    for full, m in linear_modules(model, skip=config.skip).items():
        if not full.startswith(prefix + "."):
            continue  # lm_head and other layers outside the blocks
        if m.weight.dtype != torch.float32:
            raise WattlmError(
                f"GPTQ needs float32 weights, {full} is {m.weight.dtype}",
                hint="run gptq before any cast stage",
            )
        if config.bits == 4:
            qmath.check_group_size(m.in_features, config.group_size)
        index, _, name = full[len(prefix) + 1 :].partition(".")
        out[int(index)].append(name)
    return out


def _quantize_group(layer, group: list[str], inputs, config: GptqConfig) -> tuple[float, float]:
    """GPTQ on Linear layers sharing one input; returns their output errors (GPTQ, RTN)."""
    xtx, rows = hooks.input_gram(layer, layer.get_submodule(group[0]), inputs)
    h = 2 * xtx / rows
    errors = [0.0, 0.0]
    for name in group:
        weight = layer.get_submodule(name).weight.detach()
        q = gptq_quantize(
            weight, h, bits=config.bits, group_size=config.group_size,
            zero_point=config.zero_point, damp=config.damp, act_order=config.act_order,
        )  # fmt: skip
        errors[0] += _output_error(weight, q, h)
        errors[1] += _output_error(weight, _rtn(weight, config), h)
        weight.copy_(q)
    return errors[0], errors[1]


@GptqConfig.handler
def _apply(model: torch.nn.Module, config: GptqConfig, ctx: CompressContext) -> dict[str, Any]:
    targets = _targets(model, config)  # every check before any calibration work
    ids = ctx.calibration_batch(config.calibration_samples, config.seq_len)
    device, start = torch.device(ctx.device), time.perf_counter()
    inputs = hooks.capture_layer_inputs(
        model, ids, batch_size=max(1, 2048 // config.seq_len), device=device
    )
    _, layers = hooks.decoder_layers(model)
    known: dict[tuple, list[list[str]]] = {}  # call order of identical blocks, found once
    count, gptq_err, rtn_err = 0, 0.0, 0.0
    with steps(enabled=sys.stderr.isatty()) as ui:
        advance = ui.add(f"GPTQ int{config.bits} ({ids.numel()} tokens)", total=len(layers))
        for layer, names in zip(layers, targets, strict=True):
            home = next(layer.parameters()).device
            layer.to(device)
            key = (type(layer), tuple(names))
            if key not in known:
                known[key] = hooks.linear_groups(layer, inputs, names)
            for group in known[key]:  # in call order: q/k/v, o, gate/up, down
                g_err, r_err = _quantize_group(layer, group, inputs, config)
                gptq_err, rtn_err = gptq_err + g_err, rtn_err + r_err
                count += len(group)
            inputs = hooks.run_layer(layer, inputs)  # next block sees this block quantized
            layer.to(home)
            advance()
    return {
        "quantized_linears": count,
        "calibration_tokens": ids.numel(),
        "seconds": round(time.perf_counter() - start, 1),
        "output_error_vs_rtn": round(gptq_err / max(rtn_err, 1e-30), 4),
    }
