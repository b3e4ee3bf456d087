"""Progress display for long steps: rich bars on stderr, one line per step; silent when
disabled.

The one progress wrapper of wattlm: counted steps (``add``), finished steps (``done``),
spinners (``spinner``) and byte bars (``bar``) share one live display.

Example:
    >>> with steps(enabled=False) as s:
    ...     advance = s.add("evaluating", total=3)
    ...     for _ in range(3):
    ...         advance()
    ...     with s.bar("extract", total=10) as add_bytes:
    ...         add_bytes(10)
    ...     with s.spinner("verify sha256"):
    ...         pass
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class _CountColumn(ProgressColumn):
    """``3/8`` for counted steps; bytes done (and of how many) for byte bars."""

    def render(self, task: Task) -> Text:
        size = task.fields.get("size")
        if size is not None:
            return Text(size, style="progress.download")
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


class Steps:
    """Adds named steps to one live progress display (see :func:`steps`)."""

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
    def spinner(self, description: str) -> Iterator[None]:
        """Show ``description`` with a spinner until the block ends."""
        task = self._progress.add_task(description, total=None)
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


@contextlib.contextmanager
def steps(
    *, enabled: bool = True, console: Console | None = None, terminal_only: bool = False
) -> Iterator[Steps]:
    """A progress display on stderr for the duration of the block.

    ``terminal_only``: stay silent when stderr is not a terminal (logs see nothing).
    """
    console = console or Console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        _CountColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled or (terminal_only and not console.is_terminal),
    )
    with progress:
        yield Steps(progress)
