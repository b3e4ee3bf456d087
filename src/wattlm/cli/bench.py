"""``wattlm bench`` (to be written)."""

import typer


def register(app: typer.Typer) -> None:
    """Attach the ``bench`` command to ``app``."""
