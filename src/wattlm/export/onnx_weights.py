"""ONNX weight formats: float32, or int4/int8 ``MatMulNBits`` weights, named by one string.

A format is ``fp32`` or ``int<bits>[-b<block size>][-acc<accuracy level>][-qhead]``:

- ``bits`` 4 or 8: onnxruntime-genai's model builder stores every projection of the
  decoder layers as blockwise symmetric integers (``MatMulNBits``, round-to-nearest);
- ``b`` the block size along the input features, one of 16, 32, 64, 128, 256 (default
  32); it must divide every quantized layer's input features (ONNX Runtime would pad a
  last partial block, wattlm refuses it, as it refuses such a ``group_size`` on torch);
- ``acc`` ONNX Runtime's accuracy level, the type the activations are computed in:
  1 float32, 2 float16, 3 bfloat16, 4 int8 (default 4, the fast path on CPU);
- ``qhead``: the LM head (and, at 4 bits, the tied embedding) is quantized too; by
  default both stay float32, which costs little time and keeps the most sensitive layer
  exact.

Short names are completed with the defaults: ``int4`` is ``int4-b32-acc4``.

Example:
    >>> w = OnnxWeights.parse("int4-b64")
    >>> str(w), w.precision, w.quantized
    ('int4-b64-acc4', 'int4', True)
    >>> str(OnnxWeights.parse("FP32"))
    'fp32'
    >>> OnnxWeights.parse("int4").problem({"q_proj": 576, "down_proj": 1536}) is None
    True
    >>> OnnxWeights.parse("int4-b128").problem({"q_proj": 576})
    'block size 128 does not divide q_proj (576 input features)'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wattlm.errors import WattlmError

BITS = (4, 8)
BLOCK_SIZES = (16, 32, 64, 128, 256)
ACCURACY_LEVELS = {1: "float32", 2: "float16", 3: "bfloat16", 4: "int8"}
DEFAULT_BLOCK_SIZE = 32
DEFAULT_ACCURACY_LEVEL = 4
#: the builder's names of the LM head and embedding nodes (kept float32 by default)
HEAD_NODES = ("/lm_head/MatMul", "/model/embed_tokens/Gather")
_FORMAT = re.compile(
    r"int(?P<bits>\d+)(?:-b(?P<block>\d+))?(?:-acc(?P<acc>\d+))?(?P<qhead>-qhead)?"
)
FORMAT_HINT = (
    "use fp32, or int4/int8 with optional -b<block size> (16, 32, 64, 128, 256), "
    "-acc<accuracy level> (1-4) and -qhead, e.g. int4-b32-acc4"
)


@dataclass(frozen=True)
class OnnxWeights:
    """One ONNX weight format; ``bits=None`` is float32 (see the module docstring)."""

    bits: int | None = None
    block_size: int = DEFAULT_BLOCK_SIZE
    accuracy_level: int = DEFAULT_ACCURACY_LEVEL
    quantize_head: bool = False

    @classmethod
    def parse(cls, text: str | OnnxWeights) -> OnnxWeights:
        """The format ``text`` names; a :class:`~wattlm.errors.WattlmError` if none."""
        if isinstance(text, OnnxWeights):
            return text
        name = str(text).strip().lower()
        if name in ("fp32", "float32"):
            return cls()
        match = _FORMAT.fullmatch(name)
        if match is None:
            raise WattlmError(f"unknown ONNX weight format {text!r}", hint=FORMAT_HINT)
        bits = int(match["bits"])
        block = int(match["block"] or DEFAULT_BLOCK_SIZE)
        acc = int(match["acc"] or DEFAULT_ACCURACY_LEVEL)
        for ok, what in (
            (bits in BITS, f"{bits} bits (int4 or int8)"),
            (block in BLOCK_SIZES, f"block size {block} (16, 32, 64, 128 or 256)"),
            (acc in ACCURACY_LEVELS, f"accuracy level {acc} (1 to 4)"),
        ):
            if not ok:
                raise WattlmError(f"ONNX weight format {text!r}: no {what}", hint=FORMAT_HINT)
        return cls(bits, block, acc, match["qhead"] is not None)

    def __str__(self) -> str:
        if self.bits is None:
            return "fp32"
        head = "-qhead" if self.quantize_head else ""
        return f"int{self.bits}-b{self.block_size}-acc{self.accuracy_level}{head}"

    @property
    def quantized(self) -> bool:
        return self.bits is not None

    @property
    def precision(self) -> str:
        """The builder's ``-p`` value: ``fp32``, ``int4`` or ``int8``."""
        return "fp32" if self.bits is None else f"int{self.bits}"

    def builder_options(self) -> list[str]:
        """``--extra_options`` entries of onnxruntime-genai's model builder for this format.

        Example:
            >>> OnnxWeights.parse("int8-b64-acc1").builder_options()[:2]
            ['block_size=64', 'accuracy_level=1']
        """
        if self.bits is None:
            return []
        out = [f"block_size={self.block_size}", f"accuracy_level={self.accuracy_level}"]
        if not self.quantize_head:
            out.append(f"nodes_to_exclude={','.join(HEAD_NODES)}")
        return out

    def problem(self, inputs: dict[str, int]) -> str | None:
        """Why this format cannot be built for layers with these input features (by
        name, e.g. ``{"model.layers.0.self_attn.q_proj": 576}``), or ``None``. The LM
        head (``lm_head``) counts only with ``-qhead``."""
        if self.bits is None:
            return None
        for name, features in inputs.items():
            if name.split(".")[-1] == "lm_head" and not self.quantize_head:
                continue
            if features % self.block_size:
                return (
                    f"block size {self.block_size} does not divide {name} "
                    f"({features} input features)"
                )
        return None
