"""Evaluation text: an embedded corpus by name, or a local ``.txt`` file split the same way.

A local file is cut into paragraphs at blank lines (into lines when it has fewer than
:data:`MIN_UNITS` paragraphs) and each paragraph goes to a split by the hash of its text, the
rule the embedded corpus uses for its article titles.

Example:
    >>> text = load_text("wiki-sample", "test")  # doctest: +SKIP
    >>> len(text.split()) > 20_000  # doctest: +SKIP
    True
    >>> load_text("notes.txt", "validation")  # doctest: +SKIP
    'A paragraph.\\n\\nAnother one.'
"""

from __future__ import annotations

import re
from pathlib import Path

from wattlm.assets.catalog import CATALOG
from wattlm.data.splits import SPLITS, assign, check_split
from wattlm.errors import WattlmError

MIN_UNITS = 10
_BLANK = re.compile(r"\n\s*\n")


_HINT = "use one of {} or a path to a .txt file"


def _is_asset(name: str) -> bool:
    return name in CATALOG


def text_assets() -> list[str]:
    """Names of the embedded assets that are text corpora."""
    return [a.name for a in CATALOG.values() if a.prepare == "wiki"]


def read_text_file(path: Path) -> str:
    """Read a text file as UTF-8 (undecodable bytes become U+FFFD), newlines normalised."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise WattlmError(f"cannot read {path}: {err.strerror or err}") from None
    return raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def split_paragraphs(text: str, split: str | None) -> str:
    """The paragraphs of ``text`` that belong to ``split`` (all of them for ``None``)."""
    units = [p.strip() for p in _BLANK.split(text) if p.strip()]
    if len(units) < MIN_UNITS:
        units = [line.strip() for line in text.splitlines() if line.strip()]
    if split is None:
        return "\n\n".join(units)
    chosen = assign(units, key=lambda unit: unit)[check_split(split)]
    if not chosen:
        raise WattlmError(
            f"the text is too small for a {split!r} split: {len(units)} paragraphs, none "
            f"hashed into {split!r}",
            hint="give a longer file (dozens of paragraphs separated by blank lines)",
        )
    return "\n\n".join(chosen)


def load_text(spec: str = "wiki-sample", split: str | None = "test") -> str:
    """The ``split`` of a text corpus: an embedded asset's name or a local ``.txt`` path.

    Asset names are fetched on first use. ``split`` is ``train``, ``validation`` or ``test``;
    ``None`` returns the whole text. A folder holding ``<split>.txt`` files also works.
    """
    if split is not None:
        check_split(split)
    if spec in text_assets():
        from wattlm.assets.fetch import ensure  # only for asset names

        folder = ensure(spec)
        names = [split] if split else list(SPLITS)
        return "\n\n".join(read_text_file(folder / f"{n}.txt").strip() for n in names)
    path = Path(spec).expanduser()
    if not path.exists() and _is_asset(spec):
        raise WattlmError(
            f"asset {spec!r} is not a text corpus", hint=_HINT.format(", ".join(text_assets()))
        )
    if not path.exists():
        raise WattlmError(
            f"no such text asset or file: {spec}",
            hint=_HINT.format(", ".join(text_assets())),
        )
    if path.is_dir():
        names = [split] if split else list(SPLITS)
        missing = [n for n in names if not (path / f"{n}.txt").is_file()]
        if missing:
            raise WattlmError(f"{path} has no {missing[0]}.txt", hint="pass a .txt file instead")
        return "\n\n".join(read_text_file(path / f"{n}.txt").strip() for n in names)
    return split_paragraphs(read_text_file(path), split)
