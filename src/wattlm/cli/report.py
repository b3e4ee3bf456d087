"""``wattlm report PATH``: validate a result and write its Markdown report.

Example (shell)::

    wattlm report runs/bench-2026-11-21/            # writes runs/bench-2026-11-21/report.md
    wattlm report runs/x/result.json --out x.md --no-print
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

REPORT_FILE = "report.md"


def report(
    path: Annotated[Path, typer.Argument(help="A run folder or its result.json.")],
    out: Annotated[
        Optional[Path],  # noqa: UP045 - typer reads the annotation at runtime (Python 3.10)
        typer.Option(
            "--out", "-o", help="Where to write the Markdown (default: beside result.json)."
        ),
    ] = None,
    print_: Annotated[
        bool, typer.Option("--print/--no-print", help="Show the report on the terminal.")
    ] = True,
) -> None:
    """Check a result against the schema and write a readable Markdown report of it."""
    from wattlm._files import write_text
    from wattlm.errors import WattlmError
    from wattlm.report.markdown import render_markdown
    from wattlm.report.result import load_result, result_file

    file = result_file(path)
    text = render_markdown(load_result(file))
    target = file.parent / REPORT_FILE if out is None else out
    if target.is_dir():
        target = target / REPORT_FILE
    try:
        write_text(target, text)
    except OSError as err:
        raise WattlmError(f"cannot write {target}: {err.strerror or err}") from None
    if print_:
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    typer.echo(f"wrote {target}", err=True)


def register(app: typer.Typer) -> None:
    """Attach the ``report`` command to ``app``."""
    app.command("report")(report)
