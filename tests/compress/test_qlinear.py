"""Quantized Linear modules, one layer at a time, against their float copy.

SNR thresholds on random Gaussian weights and inputs (outputs ``y = x Wᵀ``):

- int8 per channel: step = max|w|/127 ≈ 4σ/127 for a row of 64-1536 Gaussians, noise
  variance step²/12 → ≈ 40-41 dB on the weights; bf16 activations (8-bit mantissa) add
  noise at ≈ 50 dB. Threshold 35 dB leaves ~5 dB margin; a wrong scale or transposed
  layout gives < 0 dB.
- int8 dynamic: the same weight noise plus int8 per-token activations (≈ 40 dB): > 33 dB.
- int4, min/max per group: step ≈ (range of g Gaussians ≈ 4σ at g=32, more for larger
  groups)/15, noise step²/12 → ≈ 22 / 21 / 20 dB for g = 32 / 64 / 128; floors 19/18/17 dB. Against the module's own dequantized weight the kernel
  must be exact up to bf16 activations: > 40 dB.
"""

import pytest
import torch

from wattlm.compress import qmath
from wattlm.compress.qlinear import Int8DynamicLinear, Int8WeightLinear
from wattlm.compress.qlinear_int4 import Int4WeightLinear
from wattlm.compress.qlinear_int4_pack import (
    kernel_pack,
    kernel_unpack,
    pack_nibbles,
    unpack_nibbles,
)
from wattlm.errors import WattlmError


def _linear(in_f=576, out_f=192, bias=False, seed=0):
    torch.manual_seed(seed)
    lin = torch.nn.Linear(in_f, out_f, bias=bias)
    torch.nn.init.normal_(lin.weight)
    if bias:
        torch.nn.init.normal_(lin.bias)
    return lin.requires_grad_(False)


def _x(in_f, rows=5, seed=1):
    return torch.randn(rows, in_f, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("compute_dtype", [None, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [False, True])
def test_int8_weight_snr_dtype_and_bytes(compute_dtype, bias):
    lin = _linear(bias=bias)
    q = Int8WeightLinear.from_linear(lin, compute_dtype=compute_dtype)
    assert q.qweight.dtype == torch.int8 and q.qweight.shape == (192, 576)
    assert q.scale.dtype == torch.float32 and q.scale.shape == (192,)
    assert q.qweight.abs().max() == 127  # the grid is used to its end
    stored = q.qweight.numel() + q.scale.numel() * 4
    assert stored < 0.26 * lin.weight.numel() * 4  # ~4x smaller than fp32
    x = _x(576)
    assert qmath.snr_db(lin(x), q(x)) > 35
    assert torch.allclose(q.dequantize(), lin.weight, atol=lin.weight.abs().max() / 254 + 1e-6)
    y3 = q(x.reshape(1, 5, 576))  # batch × sequence inputs keep their shape and dtype
    assert y3.shape == (1, 5, 192) and y3.dtype == torch.float32


def test_int8_weight_keeps_bf16_inputs_bf16():
    lin = _linear()
    q = Int8WeightLinear.from_linear(lin)
    x = _x(576).bfloat16()
    y = q(x)
    assert y.dtype == torch.bfloat16
    assert qmath.snr_db(lin(x.float()), y) > 35


@pytest.mark.parametrize("rows", [1, 7])
def test_int8_dynamic_snr(rows):
    lin = _linear(bias=True)
    q = Int8DynamicLinear.from_linear(lin)
    assert q.qweight.dtype == torch.int8
    x = _x(576, rows=rows)
    assert qmath.snr_db(lin(x), q(x)) > 33
    assert q(x.reshape(rows, 1, 576)).shape == (rows, 1, 192)


def test_int8_dynamic_really_quantizes_activations():
    # one outlier (100σ) per token coarsens the int8 grid of the other activations
    # (step ≈ 0.8σ, expected ≈ 25 dB): a weight-only layer does not care (≈ 42 dB)
    lin = _linear()
    x = _x(576)
    x[:, 0] = 100.0
    weight_only = qmath.snr_db(
        lin(x), Int8WeightLinear.from_linear(lin, compute_dtype=torch.float32)(x)
    )
    dynamic = qmath.snr_db(lin(x), Int8DynamicLinear.from_linear(lin)(x))
    assert dynamic < weight_only - 10


@pytest.mark.parametrize(("group_size", "floor_db"), [(32, 19), (64, 18), (128, 17)])
def test_int4_snr_against_float_and_own_grid(group_size, floor_db):
    lin = _linear(in_f=512, out_f=192)
    q = Int4WeightLinear.from_linear(lin, group_size=group_size)
    assert q.qweight.dtype == torch.uint8 and q.qweight.shape == (192, 256)
    assert q.scales_and_zeros.shape == (512 // group_size, 192, 2)
    assert q.scales_and_zeros.dtype == torch.bfloat16
    x = _x(512)
    y = q(x)
    assert y.dtype == torch.float32
    assert qmath.snr_db(lin(x), y) > floor_db
    assert qmath.snr_db(x @ q.dequantize().t(), y) > 40
    # the stored grid is qmath's grid: same codes, scales within bf16 rounding
    codes, scale, offset = qmath.quantize_int4_groupwise_float_zero(lin.weight, group_size)
    assert torch.equal(q.codes(), codes)
    ref = qmath.dequantize_int4_float_zero(codes, scale, offset, group_size)
    assert qmath.snr_db(ref, q.dequantize()) > 40


@pytest.mark.parametrize("zero_point", ["float", "int"])
def test_int4_fp32_compute_matches_qmath_exactly(zero_point):
    lin = _linear(in_f=256, out_f=64)
    q = Int4WeightLinear.from_linear(
        lin, group_size=32, zero_point=zero_point, compute_dtype=torch.float32
    )
    if zero_point == "float":
        codes, scale, offset = qmath.quantize_int4_groupwise_float_zero(lin.weight, 32)
        ref = qmath.dequantize_int4_float_zero(codes, scale, offset, 32)
    else:
        codes, scale, zero = qmath.quantize_int4_groupwise(lin.weight, 32)
        ref = qmath.dequantize_int4_groupwise(codes, scale, zero, 32)
    assert torch.equal(q.codes(), codes)
    assert torch.allclose(q.dequantize(), ref, atol=1e-5)
    x = _x(256)
    assert qmath.snr_db(x @ ref.t(), q(x)) > 60


def test_int4_float_zero_reproduces_a_min_max_grid():
    # weights already on a 4-bit grid (as a dequantized GGUF Q4_1 file): every group uses
    # codes 0 and 15, with a float minimum that is no multiple of its step
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 16, (64, 8, 32), generator=gen)
    codes[..., 0], codes[..., 1] = 0, 15
    step = torch.rand(64, 8, 1, generator=gen) * 0.05 + 0.01
    low = -8 * step + torch.rand(64, 8, 1, generator=gen) * 0.01
    lin = torch.nn.Linear(256, 64, bias=False).requires_grad_(False)
    lin.weight.copy_((codes * step + low).reshape(64, 256))
    exact = Int4WeightLinear.from_linear(lin, 32, compute_dtype=torch.float32)
    rounded = Int4WeightLinear.from_linear(lin, 32, zero_point="int", compute_dtype=torch.float32)
    assert qmath.snr_db(lin.weight, exact.dequantize()) > 100
    assert qmath.snr_db(lin.weight, rounded.dequantize()) < 40  # integer zero: off-grid


def test_int4_state_dict_is_portable_afterkernel_packing():
    lin = _linear(in_f=128, out_f=48)  # 48 rows: not a whole AVX-512 block of 64
    q = Int4WeightLinear.from_linear(lin, group_size=32)
    portable = q.state_dict()["qweight"].clone()
    x = _x(128)
    y = q(x)  # re-packs qweight into the CPU kernel's layout
    assert q._layout == "cpu"
    assert torch.equal(q.state_dict()["qweight"], portable)
    fresh = Int4WeightLinear(128, 48, group_size=32)
    fresh(x)  # even a shell already packed for the kernel loads a portable state dict
    fresh.load_state_dict(q.state_dict(), strict=True)
    assert torch.equal(fresh(x), y)


def test_nibble_packing_round_trips_andkernel_unpack_is_exact():
    q = torch.randint(0, 16, (48, 96), generator=torch.Generator().manual_seed(0))
    assert torch.equal(unpack_nibbles(pack_nibbles(q)), q.to(torch.uint8))
    assert pack_nibbles(torch.tensor([[1, 2]]))[0, 0] == 0x12
    packed = kernel_pack(q, torch.device("cpu"))
    assert torch.equal(kernel_unpack(packed, (48, 96), torch.device("cpu")), q.to(torch.uint8))


def test_int4_rejects_group_size_not_dividing_inputs():
    with pytest.raises(WattlmError, match="group size 32 does not divide 48"):
        Int4WeightLinear(48, 16, group_size=32)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
@pytest.mark.parametrize("cls", [Int8WeightLinear, Int8DynamicLinear, Int4WeightLinear])
def test_cuda_paths_match_cpu(cls):
    lin = _linear(in_f=576, out_f=192)
    q = cls.from_linear(lin)
    x = _x(576, rows=3)
    y_cpu = q(x)  # int4: packs for the CPU kernel first, then re-packs for CUDA
    q = q.cuda()
    y_gpu = q(x.cuda()).cpu()
    assert qmath.snr_db(y_cpu, y_gpu) > 35
    assert qmath.snr_db(lin(x), y_gpu) > (19 if cls is Int4WeightLinear else 33)
    state = {k: v.cpu() for k, v in q.state_dict().items()}
    fresh = cls(576, 192)
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh(x), y_cpu)
