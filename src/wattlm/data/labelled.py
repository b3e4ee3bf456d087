"""Labelled sentences for classifiers: an embedded set by name, or a local file.

Local files are ``.jsonl`` (one ``{"text": ..., "label": int}`` per line) or ``.tsv``
(``text<TAB>label``, an optional ``text<TAB>label`` header). A local file is split with the
shared rule (hash of the text); a folder holding ``<split>.jsonl`` files is read as is.

Example:
    >>> rows = load_labelled("movie-sentiment", "test")  # doctest: +SKIP
    >>> rows[0]  # doctest: +SKIP
    ('A sentence from a review.', 1)
"""

from __future__ import annotations

import json
from pathlib import Path

from wattlm.assets.catalog import CATALOG
from wattlm.data.splits import SPLITS, assign, check_split
from wattlm.data.text import read_text_file
from wattlm.errors import WattlmError

Rows = list[tuple[str, int]]


def labelled_assets() -> list[str]:
    """Names of the embedded assets that are labelled sets."""
    return [a.name for a in CATALOG.values() if a.prepare == "sentiment"]


def _label(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WattlmError(f"{where}: label must be an integer, got {value!r}")
    return value


def read_jsonl(path: Path) -> Rows:
    """``(text, label)`` rows of a ``.jsonl`` file; labels must be JSON integers."""
    rows = []
    for n, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            text, label = obj["text"], obj["label"]
        except (ValueError, KeyError, TypeError):
            raise WattlmError(f"{path}:{n}: want a JSON object with text and label") from None
        if not isinstance(text, str):
            raise WattlmError(f"{path}:{n}: text must be a string")
        rows.append((text, _label(label, f"{path}:{n}")))
    return rows


def read_tsv(path: Path) -> Rows:
    """``(text, label)`` rows of a ``text<TAB>label`` file (a header line is skipped)."""
    rows = []
    for n, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        text, tab, label = line.rpartition("\t")
        if not tab:
            raise WattlmError(f"{path}:{n}: want text<TAB>label")
        if n == 1 and label.strip().lower() == "label":
            continue
        try:
            value = int(label.strip())
        except ValueError:
            raise WattlmError(f"{path}:{n}: label must be an integer, got {label!r}") from None
        rows.append((text.strip(), value))
    return rows


def load_labelled(spec: str = "movie-sentiment", split: str | None = "test") -> Rows:
    """``(text, label)`` pairs of ``split`` from an embedded set or a local file.

    ``split`` is ``train``, ``validation`` or ``test``; ``None`` returns every row.
    """
    if split is not None:
        check_split(split)
    names = [split] if split else list(SPLITS)
    if spec in labelled_assets():
        from wattlm.assets.fetch import ensure  # only for asset names

        folder = ensure(spec)
        return [row for n in names for row in read_jsonl(folder / f"{n}.jsonl")]
    path = Path(spec).expanduser()
    if path.is_dir():
        return [row for n in names for row in read_jsonl(_need(path / f"{n}.jsonl"))]
    readers = {".jsonl": read_jsonl, ".tsv": read_tsv}
    if path.suffix.lower() not in readers:
        _need(path)
        raise WattlmError(f"{path}: want a .jsonl or .tsv file", hint="rename or convert it")
    rows = readers[path.suffix.lower()](_need(path))
    if split is None:
        return rows
    chosen = assign(rows, key=lambda row: row[0])[split]
    if not chosen:
        raise WattlmError(
            f"{path} is too small for a {split!r} split ({len(rows)} rows, none in it)",
            hint="give a larger file",
        )
    return chosen


def _need(path: Path) -> Path:
    if not path.exists():
        raise WattlmError(
            f"no such labelled asset or file: {path}",
            hint=f"use one of {', '.join(labelled_assets())} or a .jsonl/.tsv file",
        )
    return path
