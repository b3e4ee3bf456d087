"""``wattlm measure`` (to be written)."""

import typer


def register(app: typer.Typer) -> None:
    """Attach the ``measure`` command to ``app``."""
