"""Export models to other runtimes' formats: GGUF for llama.cpp, ONNX for ONNX Runtime,
OpenVINO IR for OpenVINO, and read GGUF files back (:mod:`wattlm.export.gguf_reader`, the
one GGUF reader).

Names are re-exported lazily, so importing one module (the GGUF reader, say) does not load
the ONNX exporter.

Example:
    >>> from wattlm.export import export_gguf, QTYPES
    >>> sorted(QTYPES)[:3]
    ['bf16', 'f16', 'f32']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from wattlm.export._gguf_tensors import permute_rope, unpermute_rope
    from wattlm.export.gguf_reader import GgufInfo, GgufTensors, check_gguf
    from wattlm.export.gguf_weights import load_gguf_weights_
    from wattlm.export.gguf_writer import QTYPES, export_gguf
    from wattlm.export.onnx_export import export_onnx
    from wattlm.export.openvino_export import export_openvino

__all__ = [
    "QTYPES",
    "GgufInfo",
    "GgufTensors",
    "check_gguf",
    "export_gguf",
    "export_onnx",
    "export_openvino",
    "load_gguf_weights_",
    "permute_rope",
    "unpermute_rope",
]

_LAZY = {
    "QTYPES": "wattlm.export.gguf_writer",
    "export_gguf": "wattlm.export.gguf_writer",
    "export_onnx": "wattlm.export.onnx_export",
    "export_openvino": "wattlm.export.openvino_export",
    "GgufInfo": "wattlm.export.gguf_reader",
    "GgufTensors": "wattlm.export.gguf_reader",
    "check_gguf": "wattlm.export.gguf_reader",
    "load_gguf_weights_": "wattlm.export.gguf_weights",
    "permute_rope": "wattlm.export._gguf_tensors",
    "unpermute_rope": "wattlm.export._gguf_tensors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wattlm.export' has no attribute {name!r}")
