"""Calibration text for data-aware methods (GPTQ, Wanda, Taylor importance).

Sequences come from the **train** split, never from the validation (prompts) or test
(perplexity) splits, so calibration cannot leak into the reported quality.
"""

from __future__ import annotations

import torch

from wattlm.data.text import load_text
from wattlm.errors import WattlmError


def calibration_ids(
    tokenizer, data: str = "wiki-sample", *, samples: int, seq_len: int
) -> torch.Tensor:
    """``samples`` consecutive, non-overlapping sequences of ``seq_len`` train-split tokens.

    Example:
        >>> from wattlm.testing.tiny import tiny_tokenizer
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
        >>> _ = p.write_text("\\n\\n".join(f"Paragraph {i} about energy." * 5 for i in range(200)))
        >>> calibration_ids(tiny_tokenizer(), str(p), samples=2, seq_len=16).shape
        torch.Size([2, 16])
    """
    if samples < 1 or seq_len < 2:
        raise WattlmError(
            f"calibration needs samples >= 1 and seq_len >= 2, got {samples}, {seq_len}"
        )
    ids = tokenizer(load_text(data, split="train")).input_ids
    need = samples * seq_len
    if len(ids) < need:
        raise WattlmError(
            f"calibration text has {len(ids)} train tokens; {samples} × {seq_len} needs {need}",
            hint="use fewer calibration samples or a longer text",
        )
    return torch.tensor(ids[:need], dtype=torch.long).view(samples, seq_len)
