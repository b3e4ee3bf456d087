"""Prepare steps: what runs on an asset's verified files before it enters the cache.

Each step is named in the catalog (``Asset.prepare``) and imported only when it runs, so
listing assets never imports the parsers.

Example:
    >>> sorted(STEPS)
    ['none', 'sentiment', 'wiki']
"""

from __future__ import annotations

import importlib
from pathlib import Path

from wattlm.assets.catalog import Asset

# step name -> "module:function"; the function takes (raw file, output folder).
STEPS: dict[str, str | None] = {
    "none": None,
    "wiki": "wattlm.data.wiki:prepare_wiki",
    "sentiment": "wattlm.data.sentiment:prepare_sentiment",
}


def run_prepare(asset: Asset, folder: Path) -> None:
    """Run ``asset``'s prepare step on its first kept file, writing outputs into ``folder``."""
    target = STEPS[asset.prepare]
    if target is None:
        return
    module, func = target.split(":")
    getattr(importlib.import_module(module), func)(folder / asset.files[0].path, folder)
