"""``wattlm report PATH``: validate a result and write its Markdown report.

An optimize run (a folder holding ``optimize.json``, or that file), a train search (a
folder holding ``train-search.json``, or that file) and a federated run (``federate.json``)
get ``report.html`` and ``report.md`` beside it (or in the ``--out`` folder).

Example (shell)::

    wattlm report runs/bench-2026-11-21/            # writes runs/bench-2026-11-21/report.md
    wattlm report runs/x/result.json --out x.md --no-print
    wattlm report runs/opt/                         # writes runs/opt/report.html + report.md
    wattlm report runs/federate/                    # the same for a federated run
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

REPORT_FILE = "report.md"


def report(
    path: Annotated[
        Path, typer.Argument(help="A run folder, its result.json, or an optimize.json.")
    ],
    out: Annotated[
        Optional[Path],  # noqa: UP045 - typer reads the annotation at runtime (Python 3.10)
        typer.Option(
            "--out",
            "-o",
            help="Where to write the Markdown (default: beside result.json); for an optimize "
            "run, the folder for report.html and report.md.",
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
    from wattlm.report.optimize_report import optimize_file
    from wattlm.report.result import load_result, result_file

    optimize_json = optimize_file(path)
    if optimize_json is not None:
        _optimize_reports(optimize_json, out, print_)
        return
    from wattlm.report import train_search_report

    search_json = train_search_report.train_search_file(path)
    if search_json is not None:
        _optimize_reports(search_json, out, print_, train_search_report)
        return
    from wattlm.federate import report as federate_report

    federate_json = federate_report.federate_file(path)
    if federate_json is not None:
        _optimize_reports(federate_json, out, print_, federate_report)
        return
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


def _optimize_reports(file: Path, out: Path | None, print_: bool, module=None) -> None:
    """report.html + report.md of an optimize run (or, with ``module``, a train search or
    a federated run: a module with ``write_reports(record, out_dir)`` and
    ``MARKDOWN_FILE``)."""
    from wattlm.report import optimize_report
    from wattlm.report.result import load_result

    module = module or optimize_report
    record = load_result(file)
    written = module.write_reports(record, file.parent if out is None else out)
    if print_:
        from rich.console import Console
        from rich.markdown import Markdown

        md = next(p for p in written if p.name == module.MARKDOWN_FILE)
        Console().print(Markdown(md.read_text(encoding="utf-8")))
    for target in written:
        typer.echo(f"wrote {target}", err=True)


def register(app: typer.Typer) -> None:
    """Attach the ``report`` command to ``app``."""
    app.command("report")(report)
