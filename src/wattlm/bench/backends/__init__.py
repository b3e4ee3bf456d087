"""Inference backends: what runs the model (torch eager, llama.cpp)."""

from __future__ import annotations

from wattlm.errors import WattlmError

#: backend name -> "module:class"; an allow-list, never user-supplied import paths
BACKENDS = {
    "torch": "wattlm.bench.backends.torch_eager:TorchBackend",
    "llamacpp": "wattlm.bench.backends.llamacpp:LlamaCppBackend",
    "onnxruntime": "wattlm.bench.backends.onnxruntime:OnnxRuntimeBackend",
}


def backend_class(name: str) -> type:
    """Return the backend class registered under ``name``.

    Example:
        >>> backend_class("torch").__name__
        'TorchBackend'
    """
    import importlib

    if name not in BACKENDS:
        raise WattlmError(
            f"unknown backend {name!r}", hint=f"choose from: {', '.join(sorted(BACKENDS))}"
        )
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)
