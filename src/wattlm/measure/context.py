"""The hardware and software a result was produced on, saved with every result.

Cheap to call: it never imports torch (it asks torch for its thread count only when the
caller already imported it) and touches a GPU only through NVML, when that is installed.

Example:
    >>> ctx = collect_context(threads=2)
    >>> sorted(ctx["cpu"])[:3]
    ['affinity_cores', 'family', 'flags']
    >>> isinstance(ctx["gpus"], list)
    True
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import sys
from importlib import metadata
from typing import Any

import psutil

from wattlm._version import __version__
from wattlm.measure.cpu_power import read_cpu_identity
from wattlm.measure.nvml import list_gpus

__all__ = ["LIBRARIES", "collect_context"]

LIBRARIES = ("torch", "transformers", "safetensors", "gguf", "xllamacpp", "numpy", "nvidia-ml-py")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8", "amx_tile", "avx_vnni")  # fmt: skip


def _threads(threads: int | None) -> dict[str, Any]:
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return {"threads": int(torch.get_num_threads()), "threads_from": "torch.get_num_threads"}
    return {"threads": threads, "threads_from": "argument" if threads is not None else "unknown"}


def _libraries() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _cpu() -> dict[str, Any]:
    ident = read_cpu_identity()
    return {
        "model_name": ident.model_name,
        "vendor": ident.vendor,
        "family": ident.family,
        "model": ident.model,
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "affinity_cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "flags": [f for f in CPU_FLAGS if f in ident.flags],
        "machine": platform.machine(),
    }


def collect_context(threads: int | None = None) -> dict[str, Any]:
    """CPU, threads, GPUs, RAM, OS, Python, library versions, wattlm version, host, time.

    ``threads`` is recorded when torch is not imported (else torch's own count is used).
    """
    return {
        "cpu": _cpu(),
        **_threads(threads),
        "gpus": list_gpus(),
        "ram_bytes": int(psutil.virtual_memory().total),
        "os": {
            "system": platform.system(),
            "kernel": platform.release(),
            "platform": platform.platform(),
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "libraries": _libraries(),
        "wattlm_version": __version__,
        "hostname": socket.gethostname(),
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
