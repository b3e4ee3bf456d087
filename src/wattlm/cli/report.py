"""``wattlm report`` (to be written)."""

import typer


def register(app: typer.Typer) -> None:
    """Attach the ``report`` command to ``app``."""
