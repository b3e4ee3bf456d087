"""``wattlm assets list|fetch`` (to be written)."""

import typer

app = typer.Typer(help="List and fetch the embedded models and data sets.", no_args_is_help=True)
