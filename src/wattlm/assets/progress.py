"""A small wrapper over rich's progress display for the steps of a fetch.

Quiet when disabled or when stderr is not a terminal (logs and tests see nothing).

Example:
    >>> with Steps(enabled=False) as steps:
    ...     with steps.bar("extract", total=10) as advance:
    ...         advance(10)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class Steps:
    """Spinners and byte bars on stderr, one line per step."""

    def __init__(self, *, enabled: bool = True) -> None:
        console = Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[size]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not (enabled and sys.stderr.isatty()),
        )

    def __enter__(self) -> Steps:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def spinner(self, description: str) -> Iterator[None]:
        """Show ``description`` with a spinner until the block ends."""
        task = self._progress.add_task(description, total=None, size="")
        yield
        self._progress.update(task, total=1, completed=1)

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """Show a byte bar; the block gets a function to call with each chunk's size."""
        task = self._progress.add_task(description, total=total, size="")
        done = [0]
        of = f"/{decimal(total)}" if total else ""

        def advance(nbytes: int) -> None:
            done[0] += nbytes
            self._progress.update(task, advance=nbytes, size=f"{decimal(done[0])}{of}")

        yield advance
        self._progress.update(task, total=done[0] or 1, completed=done[0] or 1)
