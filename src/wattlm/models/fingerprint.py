"""Fingerprints and sizes of the model whose numbers are reported."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def state_dict_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order.

    It identifies the weights actually in memory (after any transform), not a file.

    Example:
        >>> m = torch.nn.Linear(2, 2)
        >>> _ = torch.nn.init.zeros_(m.weight), torch.nn.init.zeros_(m.bias)
        >>> state_dict_sha256(m)[:12]
        '6645f8f4f612'
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        flat = t.contiguous().cpu().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def parameter_count(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once), quantized weights included.

    A quantized module keeps its weight in integer buffers, not parameters; it reports the
    weights it stands for as ``quantized_parameters`` (``in_features × out_features``).

    Example:
        >>> from wattlm.compress.qlinear import Int8WeightLinear
        >>> m = torch.nn.Sequential(Int8WeightLinear.from_linear(torch.nn.Linear(8, 4)))
        >>> parameter_count(m)  # 32 int8 weights + 4 float bias
        36
    """
    quantized = sum(getattr(m, "quantized_parameters", 0) for m in model.modules())
    return quantized + sum(p.numel() for p in model.parameters())


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes held by distinct parameters and buffers (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def disk_bytes(path: Path) -> int:
    """Size on disk of a model file, or of the weight files in a model folder."""
    if path.is_file():
        return path.stat().st_size
    patterns = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.onnx")
    return sum(f.stat().st_size for pat in patterns for f in path.glob(pat))
