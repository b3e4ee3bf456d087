"""Progress of a search a person can follow anywhere.

On a terminal (stderr), a live view: trials done, what runs now, best feasible so far,
time left. Where output is not a terminal (CI, ``| tee``, a log file), plain lines
instead, one per stage (``[1:05] baseline: full stage``) and one per finished trial
(``[2:13] #4 none → llama.cpp q4_0 · …: 0.0123 J/token, ppl 17.62 (+0.7%)``): on stdout
when stdout is not a terminal and ``lines_to_stdout`` is on (``optimize`` turns it on
unless stdout carries ``--json``), else on stderr when stderr is not one. Nothing when disabled (``--no-progress``).
"""

from __future__ import annotations

import time
from typing import Any


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class SearchProgress:
    """Holds the view's state; ``update(...)`` redraws it."""

    def __init__(
        self,
        *,
        enabled: bool,
        total: int,
        deadline: float | None,
        unit: str,
        lines_to_stdout: bool = False,
    ):
        self.enabled = enabled
        self.lines_to_stdout = lines_to_stdout
        self.total = total
        self.deadline = deadline
        self.unit = unit
        self.started = time.monotonic()
        self.done = 0
        self.activity = "starting"
        self.best: str | None = None
        self.baseline: str | None = None
        self._live: Any = None
        #: where plain lines go (a file object), ``None``: none
        self._lines: Any = None

    def __enter__(self) -> SearchProgress:
        if not self.enabled:
            return self
        import sys

        from rich.console import Console
        from rich.live import Live

        console = Console(stderr=True)
        if self.lines_to_stdout and not sys.stdout.isatty():
            self._lines = sys.stdout
        elif not console.is_terminal:
            self._lines = sys.stderr
        if not console.is_terminal:
            return self
        self._live = Live(self, console=console, refresh_per_second=2, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self, refresh=True)
            self._live.__exit__(*exc)
            self._live = None

    def update(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self, key, value)
        if self._live is not None:
            self._live.update(self, refresh=True)

    def log(self, line: str) -> None:
        """A line that stays (a finished trial): above the live view, and plain."""
        if self._live is not None:
            self._live.console.print(line, highlight=False)
        self._plain_line(line)

    def stage(self, activity: str) -> None:
        """A new stage of the search begins: the live view's "now", one plain line."""
        self.update(activity=activity)
        self._plain_line(activity)

    def _plain_line(self, line: str) -> None:
        if self._lines is not None:
            elapsed = _clock(time.monotonic() - self.started)
            print(f"[{elapsed}] {line}", file=self._lines, flush=True)

    def __rich__(self) -> Any:
        from rich.table import Table

        elapsed = time.monotonic() - self.started
        left = None if self.deadline is None else self.deadline - time.monotonic()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row(
            "trials", f"{self.done}/{self.total} · {_clock(elapsed)} elapsed · {_clock(left)} left"
        )
        grid.add_row("now", self.activity)
        grid.add_row("best", self.best or "no feasible trial yet")
        if self.baseline:
            grid.add_row("baseline", self.baseline)
        return grid


def describe(rec: dict[str, Any], unit: str) -> str:
    """``#4 none → llama.cpp q4_0 · batch 8 · 2 threads: 0.0123 J/token, ppl 17.62 (+0.7%)``."""
    m = rec["metrics"]
    if rec["state"] == "failed":
        return f"#{rec['number']} {rec['label']}: failed ({rec['error']})"
    energy = m["objective"]["median"] if m.get("objective") else None
    ppl, inc = m.get("perplexity"), m.get("perplexity_increase")
    parts = [f"{energy:.4g} {unit}" if energy is not None else "no energy"]
    if ppl is not None:
        parts.append(f"ppl {ppl:.2f}" + (f" ({inc:+.1%})" if inc is not None else ""))
    if m.get("speculative_acceptance") is not None:
        parts.append(f"{m['speculative_acceptance']:.0%} of drafts accepted")
    flag = "" if rec["feasible"] else " · over budget"
    if rec.get("early_stop"):
        flag = f" · {rec['early_stop']}"
    return f"#{rec['number']} {rec['label']}: {', '.join(parts)}{flag}"
