"""Entry point of the ``wattlm`` command.

Subcommands live in their own modules and are attached here. Errors the user can act on
(:class:`~wattlm.errors.WattlmError`, bad options) print one line and exit with code 2; pass
``--debug`` to see the traceback.
"""

from __future__ import annotations

import sys

import typer

from wattlm._version import __version__
from wattlm.errors import WattlmError


def _usage_errors() -> tuple[type[Exception], ...]:
    """The exception types of bad command lines (unknown option, bad value): click's on the
    typer releases built on click (< 0.22), ``typer.TyperException`` on the later ones."""
    found: list[type[Exception]] = []
    if hasattr(typer, "TyperException"):
        found.append(typer.TyperException)
    try:
        import click
    except ImportError:
        pass
    else:
        found.append(click.ClickException)
    return tuple(found)


USAGE_ERRORS = _usage_errors()

app = typer.Typer(
    name="wattlm",
    help="Measure, compress and search language models for lower energy at equal quality.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"wattlm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    _state["debug"] = debug


def _attach() -> None:
    from wattlm.cli import (
        assets,
        bench,
        calibrate,
        compress,
        federate,
        loadtest,
        measure,
        optimize,
        report,
        serve,
        train,
    )

    app.add_typer(assets.app, name="assets")
    bench.register(app)
    calibrate.register(app)
    compress.register(app)
    federate.register(app)
    measure.register(app)
    optimize.register(app)
    report.register(app)
    serve.register(app)
    loadtest.register(app)
    train.register(app)


_attach()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (``wattlm`` console script)."""
    args = sys.argv[1:] if argv is None else argv
    _state["debug"] = "--debug" in args
    try:
        rc = app(args=args, prog_name="wattlm", standalone_mode=False)
    except WattlmError as err:
        if _state["debug"]:
            raise
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        return err.exit_code
    except typer.Exit as ex:
        return ex.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except USAGE_ERRORS as err:  # usage errors: unknown option, bad value
        if _state["debug"]:
            raise
        ctx = getattr(err, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.secho(f"error: {err.format_message()}{where}", err=True, fg=typer.colors.RED)
        return getattr(err, "exit_code", 2)
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
