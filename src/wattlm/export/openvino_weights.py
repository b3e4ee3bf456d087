"""OpenVINO weight formats: float32, or weights compressed by NNCF, named by one string.

A format is ``fp32``, ``int8[-sym|-asym]`` or ``int4[-sym|-asym][-g<group size>][-r<ratio>]``:

- ``int8``: every weight stored as 8-bit integers with one scale per output channel
  (NNCF ``INT8_ASYM`` by default, NNCF's own default mode; ``-sym`` for ``INT8_SYM``);
- ``int4``: the decoder layers' projections as 4-bit integers with one scale (and, with
  ``-asym``, one zero point) per group of ``g`` input features (NNCF ``INT4_SYM`` by
  default, group 32); ``r`` is the percentage of those layers put in 4 bits (NNCF's
  ``ratio``), the rest and, as NNCF does by default, the embedding and the LM head in
  8 bits (``INT8_ASYM``, per channel). The group size must divide every 4-bit layer's
  input features (NNCF would otherwise fall back silently; wattlm refuses it).

Weights are compressed data-free (round to nearest), so the same model and format give the
same file. Short names are completed with the defaults: ``int4`` is ``int4-sym-g32-r100``.

Example:
    >>> w = OpenVinoWeights.parse("int4-g64")
    >>> str(w), w.quantized
    ('int4-sym-g64-r100', True)
    >>> str(OpenVinoWeights.parse("int8")), str(OpenVinoWeights.parse("FP32"))
    ('int8-asym', 'fp32')
    >>> OpenVinoWeights.parse("int4-g128").problem({"q_proj": 576})
    'group size 128 does not divide q_proj (576 input features)'
    >>> OpenVinoWeights.parse("int4-asym-g32-r80").nncf_options()
    {'mode': 'INT4_ASYM', 'group_size': 32, 'ratio': 0.8}
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wattlm.errors import WattlmError

BITS = (4, 8)
GROUP_SIZES = (16, 32, 64, 128, 256)
DEFAULT_GROUP_SIZE = 32
_FORMAT = re.compile(
    r"int(?P<bits>\d+)(?:-(?P<sym>sym|asym))?(?:-g(?P<group>\d+))?(?:-r(?P<ratio>\d+))?"
)
FORMAT_HINT = (
    "use fp32, int8 (-sym or -asym), or int4 with optional -sym/-asym, -g<group size> "
    "(16, 32, 64, 128, 256) and -r<percent of layers in 4 bits>, e.g. int4-sym-g32-r100"
)


@dataclass(frozen=True)
class OpenVinoWeights:
    """One OpenVINO weight format; ``bits=None`` is float32 (see the module docstring)."""

    bits: int | None = None
    symmetric: bool = False
    group_size: int = DEFAULT_GROUP_SIZE
    ratio_percent: int = 100

    @classmethod
    def parse(cls, text: str | OpenVinoWeights) -> OpenVinoWeights:
        """The format ``text`` names; a :class:`~wattlm.errors.WattlmError` if none."""
        if isinstance(text, OpenVinoWeights):
            return text
        name = str(text).strip().lower()
        if name in ("fp32", "float32"):
            return cls()
        match = _FORMAT.fullmatch(name)
        if match is None:
            raise WattlmError(f"unknown OpenVINO weight format {text!r}", hint=FORMAT_HINT)
        bits = int(match["bits"])
        if bits not in BITS:
            raise WattlmError(f"OpenVINO weight format {text!r}: no {bits} bits", hint=FORMAT_HINT)
        if bits == 8:
            if match["group"] or match["ratio"]:
                raise WattlmError(
                    f"OpenVINO weight format {text!r}: int8 is per channel (no -g or -r)",
                    hint=FORMAT_HINT,
                )
            return cls(8, symmetric=match["sym"] == "sym", group_size=0)
        group = int(match["group"] or DEFAULT_GROUP_SIZE)
        ratio = int(match["ratio"] or 100)
        if group not in GROUP_SIZES:
            raise WattlmError(
                f"OpenVINO weight format {text!r}: no group size {group}", hint=FORMAT_HINT
            )
        if not 1 <= ratio <= 100:
            raise WattlmError(
                f"OpenVINO weight format {text!r}: the ratio is a percentage, 1 to 100",
                hint=FORMAT_HINT,
            )
        return cls(4, symmetric=match["sym"] != "asym", group_size=group, ratio_percent=ratio)

    def __str__(self) -> str:
        if self.bits is None:
            return "fp32"
        sym = "sym" if self.symmetric else "asym"
        if self.bits == 8:
            return f"int8-{sym}"
        return f"int4-{sym}-g{self.group_size}-r{self.ratio_percent}"

    @property
    def quantized(self) -> bool:
        return self.bits is not None

    def nncf_options(self) -> dict[str, object]:
        """Keyword arguments of ``nncf.compress_weights`` (``mode`` by its enum name)."""
        if self.bits is None:
            return {}
        mode = f"INT{self.bits}_{'SYM' if self.symmetric else 'ASYM'}"
        if self.bits == 8:
            return {"mode": mode}
        return {"mode": mode, "group_size": self.group_size, "ratio": self.ratio_percent / 100}

    def problem(self, inputs: dict[str, int]) -> str | None:
        """Why this format cannot be built for layers with these input features (by
        name), or ``None``. The LM head stays 8-bit per channel, so it never counts."""
        if self.bits != 4:
            return None
        for name, features in inputs.items():
            if name.split(".")[-1] == "lm_head":
                continue
            if features % self.group_size:
                return (
                    f"group size {self.group_size} does not divide {name} "
                    f"({features} input features)"
                )
        return None
