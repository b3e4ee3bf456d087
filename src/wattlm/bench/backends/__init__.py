"""Inference backends: what runs the model (torch eager, llama.cpp, ONNX Runtime, OpenVINO).

The backend names are defined here, once; configs, search spaces and reports use them.

Example:
    >>> BACKEND_CHOICES
    ('auto', 'torch', 'llamacpp', 'onnxruntime', 'openvino')
    >>> BACKEND_LABELS["llamacpp"]
    'llama.cpp'
"""

from __future__ import annotations

from wattlm.errors import WattlmError

#: backend name -> "module:class"; an allow-list, never user-supplied import paths
BACKENDS = {
    "torch": "wattlm.bench.backends.torch_eager:TorchBackend",
    "llamacpp": "wattlm.bench.backends.llamacpp:LlamaCppBackend",
    "onnxruntime": "wattlm.bench.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "wattlm.bench.backends.openvino:OpenVinoBackend",
}
#: every backend name, in the order above
BACKEND_NAMES = tuple(BACKENDS)
#: what a bench config's ``backends`` may hold: ``auto`` picks them for the model
BACKEND_CHOICES = ("auto", *BACKEND_NAMES)
#: how reports write each backend's name
BACKEND_LABELS = {
    "torch": "torch",
    "llamacpp": "llama.cpp",
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO",
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
