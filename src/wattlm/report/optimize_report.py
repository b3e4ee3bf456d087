"""Write the reports of a ``wattlm optimize`` run: ``report.html`` and ``report.md``.

``wattlm optimize`` calls :func:`write_reports` when its search ends; ``wattlm report DIR``
calls it again on a saved ``optimize.json`` (see :func:`optimize_file`).

Example:
    >>> import tempfile, pathlib
    >>> from wattlm.testing.optimize_record import sample_optimize_record
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> [p.name for p in write_reports(sample_optimize_record(), out)]
    ['report.html', 'report.md']
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from wattlm._files import write_text
from wattlm.errors import WattlmError
from wattlm.report.optimize_html import render_html
from wattlm.report.optimize_md import render_optimize_markdown

OPTIMIZE_FILE = "optimize.json"
HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"

__all__ = ["HTML_FILE", "MARKDOWN_FILE", "OPTIMIZE_FILE", "optimize_file", "write_reports"]


def write_reports(record: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Render ``record`` and write ``report.html`` and ``report.md`` into ``out_dir``.

    Each file is written atomically (a reader never sees half a report). Returns the two
    paths. Raises :class:`WattlmError` when the folder cannot be written.
    """
    out = Path(out_dir)
    pages = [(HTML_FILE, render_html(record)), (MARKDOWN_FILE, render_optimize_markdown(record))]
    written = []
    for name, text in pages:
        try:
            written.append(write_text(out / name, text))
        except OSError as err:
            raise WattlmError(f"cannot write {out / name}: {err.strerror or err}") from None
    return written


def optimize_file(path: str | os.PathLike[str]) -> Path | None:
    """The ``optimize.json`` that ``path`` names, or ``None`` when it names something else.

    ``path`` may be a run folder holding ``optimize.json`` or the file itself (any name
    whose JSON says ``"kind": "optimize"``).
    """
    path = Path(path)
    if path.is_dir():
        file = path / OPTIMIZE_FILE
        return file if file.is_file() else None
    if path.name == OPTIMIZE_FILE and path.is_file():
        return path
    if path.suffix == ".json" and path.is_file():
        try:
            head = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # the ordinary result loader reports the problem
        return path if isinstance(head, dict) and head.get("kind") == "optimize" else None
    return None
