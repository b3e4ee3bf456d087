"""Progress display for long steps: live rich bars on a terminal, one plain line per
finished step elsewhere (logs, CI); silent when disabled.

The one progress wrapper of wattlm: counted steps (``add``), finished steps (``done``),
spinners (``spinner``) and byte bars (``bar``) share one display.

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
import time
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


class _Lines:
    """Stands in for rich's ``Progress`` off a terminal: one line per finished step."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._tasks: dict[int, dict] = {}

    def add_task(self, description: str, total: float | None = None, **fields) -> int:
        task = len(self._tasks)
        self._tasks[task] = {"description": description, "total": total, "completed": 0.0}
        self._tasks[task].update(fields, started=time.monotonic(), shown=False)
        self.update(task)
        return task

    def advance(self, task: int, advance: float) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, *, advance: float = 0, **changes) -> None:
        state = self._tasks[task]
        state.update(changes)
        state["completed"] += advance
        total = state["total"]
        if total is not None and state["completed"] >= total:
            self._show(state)

    def _show(self, state: dict) -> None:
        if state["shown"]:
            return
        state["shown"] = True
        total, done = state["total"], state["completed"]
        count = state.get("size") or (f"{int(done)}/{int(total)}" if total and total > 1 else "")
        seconds = time.monotonic() - state["started"]
        parts = [state["description"], count, f"{seconds:.1f} s"]
        self._console.print("  ".join(p for p in parts if p), markup=False, highlight=False)

    def finish(self) -> None:
        """Show the steps still open when the block ends (their counts as reached)."""
        for state in self._tasks.values():
            self._show(state)


class Steps:
    """Adds named steps to one progress display (see :func:`steps`)."""

    def __init__(self, progress: Progress | _Lines) -> None:
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

    On a terminal: live bars. Elsewhere: one line per step as it finishes, or nothing
    with ``terminal_only``.
    """
    console = console or Console(stderr=True)
    if enabled and not console.is_terminal:
        if terminal_only:
            enabled = False
        else:
            lines = _Lines(console)
            yield Steps(lines)
            lines.finish()
            return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        _CountColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )
    with progress:
        yield Steps(progress)
