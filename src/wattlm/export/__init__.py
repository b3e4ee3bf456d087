"""Export models to other runtimes' formats: GGUF for llama.cpp, ONNX for ONNX Runtime.

Example:
    >>> from wattlm.export import export_gguf, QTYPES
    >>> sorted(QTYPES)[:3]
    ['bf16', 'f16', 'f32']
"""

from wattlm.export._gguf_tensors import permute_rope, unpermute_rope
from wattlm.export.gguf_writer import QTYPES, export_gguf
from wattlm.export.onnx_export import export_onnx

__all__ = ["QTYPES", "export_gguf", "export_onnx", "permute_rope", "unpermute_rope"]
