"""Shared reading of dataclass configs from JSON objects."""

from __future__ import annotations

import dataclasses
from typing import Any

from wattlm.errors import WattlmError


def check_keys(data: Any, cls: type, what: str) -> dict[str, Any]:
    """``data`` as a new dict, after checking it is an object holding only ``cls``'s fields.

    Example:
        >>> from wattlm.bench.config import BenchConfig
        >>> check_keys({"repeats": 3}, BenchConfig, "bench config")
        {'repeats': 3}
    """
    if not isinstance(data, dict):
        raise WattlmError(f"{what} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise WattlmError(
            f"unknown {what} key(s): {', '.join(unknown)}",
            hint=f"valid keys: {', '.join(sorted(names))}",
        )
    return dict(data)
