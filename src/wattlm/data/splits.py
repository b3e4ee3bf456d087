"""The one deterministic split rule shared by every corpus and labelled set.

An item goes to a split by the sha256 of its key (an article title, a sentence id, a
paragraph's text): the first 8 bytes as a fraction in [0, 1) against cumulative fractions
80/10/10. The same key always lands in the same split, on every machine and Python version,
and adding items never moves the others.

Example:
    >>> split_of("Albert Einstein")
    'train'
    >>> assign(list("efghi"), key=str)
    {'train': ['e', 'f', 'h'], 'validation': ['g', 'i'], 'test': []}
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import TypeVar

from wattlm.errors import WattlmError

T = TypeVar("T")

SPLITS: tuple[str, ...] = ("train", "validation", "test")
FRACTIONS: tuple[float, ...] = (0.8, 0.1, 0.1)


def bucket(key: str) -> float:
    """The key's position in [0, 1): the first 8 bytes of its sha256 as a fraction."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(key: str, fractions: tuple[float, ...] = FRACTIONS) -> str:
    """The split (``train``, ``validation`` or ``test``) that ``key`` belongs to."""
    point, edge = bucket(key), 0.0
    for name, frac in zip(SPLITS, fractions, strict=True):
        edge += frac
        if point < edge:
            return name
    return SPLITS[-1]


def assign(items: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    """Group ``items`` by split, keeping their order within each split."""
    out: dict[str, list[T]] = {name: [] for name in SPLITS}
    for item in items:
        out[split_of(key(item))].append(item)
    return out


def check_split(split: str) -> str:
    """Return ``split`` if it is a known split name, else raise :class:`WattlmError`."""
    if split not in SPLITS:
        raise WattlmError(f"unknown split {split!r}", hint=f"use one of: {', '.join(SPLITS)}")
    return split
