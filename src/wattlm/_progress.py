"""Progress display for long steps (rich bars on stderr; silent when disabled)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class Steps:
    """Adds named steps to one live progress display.

    Example:
        >>> with steps(enabled=False) as s:
        ...     advance = s.add("evaluating", total=3)
        ...     for _ in range(3):
        ...         advance()
    """

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def add(self, description: str, total: float | None = None) -> Callable[..., None]:
        """Start a step; returns ``advance(n=1)``. ``total=None`` shows a spinner."""
        task = self._progress.add_task(description, total=total)

        def advance(n: float = 1, *, total: float | None = None) -> None:
            if total is not None:
                self._progress.update(task, total=total)
            self._progress.advance(task, n)

        return advance

    def done(self, description: str) -> None:
        """Show a finished, untimed step (e.g. a cached load)."""
        self._progress.add_task(description, total=1, completed=1)


@contextlib.contextmanager
def steps(*, enabled: bool = True, console: Console | None = None) -> Iterator[Steps]:
    """A progress display on stderr for the duration of the block."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        disable=not enabled,
    )
    with progress:
        yield Steps(progress)
