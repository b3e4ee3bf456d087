"""Int4 code layouts: the portable one stored in state dicts, and the kernels' own.

Portable: uint8 ``[out, in/2]``, two 4-bit codes per byte, even input index in the high
nibble (torchao's convention, also the input of the CUDA packer).

Kernel layouts differ between CPU instruction sets (AVX-512, AVX2, none: see torch's
``int4mm_kernel.cpp``) and CUDA (4-D tiles). Rather than hard-code them, the layout is
learnt from the packer itself: packing is a permutation of nibbles, so packing "probe"
codes that spell 4 bits of each code's own index at a time tells where every code lands.

Example:
    >>> q = torch.randint(0, 16, (32, 64))
    >>> packed = kernel_pack(q, torch.device("cpu"))
    >>> torch.equal(kernel_unpack(packed, (32, 64), torch.device("cpu")), q.to(torch.uint8))
    True
"""

from __future__ import annotations

import functools

import torch

from wattlm.errors import WattlmError

#: group sizes the CPU and CUDA int4 kernels accept
KERNEL_GROUP_SIZES = (32, 64, 128, 256)


def pack_nibbles(q: torch.Tensor) -> torch.Tensor:
    """Codes ``[n, k]`` in 0..15 → uint8 ``[n, k/2]``, even index in the high nibble."""
    q = q.to(torch.uint8)
    return (q[:, ::2] << 4) | q[:, 1::2]


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_nibbles`: uint8 codes ``[n, k]``."""
    return torch.stack([packed >> 4, packed & 15], dim=-1).reshape(packed.shape[0], -1)


def _inner_k_tiles(in_features: int) -> int:
    for tiles in (8, 4, 2):
        if in_features % (16 * tiles) == 0:
            return tiles
    raise WattlmError(f"CUDA int4 kernel needs in_features divisible by 32, got {in_features}")


def kernel_pack(q: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Codes ``[n, k]`` (int32, 0..15) in the layout of ``device``'s int4 kernel."""
    if device.type == "cpu":
        return torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).cpu(), 1)
    if device.type != "cuda" or torch.cuda.get_device_capability(device) < (8, 0):
        raise WattlmError(
            f"no int4 kernel for device {device}",
            hint="int4-weight runs on CPU or on CUDA GPUs of compute capability 8.0+",
        )
    packed = pack_nibbles(q).to(device)
    return torch.ops.aten._convert_weight_to_int4pack(packed, _inner_k_tiles(q.shape[1]))


def _nibbles(t: torch.Tensor) -> torch.Tensor:
    b = t.contiguous().view(torch.uint8).reshape(-1)
    return torch.stack([b & 15, b >> 4], dim=-1).reshape(-1)


@functools.lru_cache(maxsize=16)
def _nibble_sources(n: int, k: int, device: torch.device) -> torch.Tensor:
    """For each nibble of the kernel layout, the flat index of the code it holds: found
    by packing probe codes (4 bits of each code's own index at a time), then checked."""
    index = torch.arange(n * k, dtype=torch.int64)
    source = torch.zeros(n * k, dtype=torch.int64)
    for shift in range(0, max(n * k - 1, 1).bit_length(), 4):
        probe = ((index >> shift) & 15).reshape(n, k)
        source |= _nibbles(kernel_pack(probe, device)).cpu()[: n * k].long() << shift
    check = torch.randint(0, 16, (n, k), generator=torch.Generator().manual_seed(0))
    if not torch.equal(
        check.reshape(-1)[source], _nibbles(kernel_pack(check, device)).cpu().long()[: n * k]
    ):
        raise WattlmError("int4 kernel layout is not a nibble permutation; cannot unpack it")
    return source


def kernel_unpack(packed: torch.Tensor, shape: tuple[int, int], device: torch.device):
    """Codes ``[n, k]`` (uint8) back from ``device``'s kernel layout."""
    n, k = shape
    source = _nibble_sources(n, k, device).to(packed.device)
    q = torch.empty(n * k, dtype=torch.uint8, device=packed.device)
    q[source] = _nibbles(packed)[: n * k]
    return q.reshape(n, k)
