"""The names a model is loaded with, defined once: floating-point dtypes and tasks.

Importing this module does not import torch; :func:`torch_dtype` does, when called.

Example:
    >>> DTYPE_NAMES, TASKS
    (('float32', 'bfloat16', 'float16'), ('causal-lm', 'sequence-classification'))
    >>> torch_dtype("bfloat16")
    torch.bfloat16
    >>> torch_dtype("int3")
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: unknown dtype 'int3' (choose from: float32, bfloat16, float16)
"""

from __future__ import annotations

from typing import Any

from wattlm._config import check_choice

#: floating-point dtypes a model can be loaded in, cast to or computed in
DTYPE_NAMES = ("float32", "bfloat16", "float16")
#: what a model is loaded for (its head)
TASKS = ("causal-lm", "sequence-classification")


def torch_dtype(name: str) -> Any:
    """The ``torch.dtype`` called ``name`` (one of :data:`DTYPE_NAMES`)."""
    check_choice("dtype", name, DTYPE_NAMES)
    import torch

    return getattr(torch, name)
