"""Where fetched assets live, and how to tell a complete cache entry.

The cache root is ``$WATTLM_CACHE`` when set, else the platform's user cache folder
(``~/.cache/wattlm`` on Linux). Each asset is a folder ``<root>/assets/<name>/`` that is only
ever put in place by one atomic rename, with a ``.wattlm-asset.json`` manifest inside; an entry
without a matching manifest does not count as cached.

Example:
    >>> import os
    >>> os.environ["WATTLM_CACHE"] = "/tmp/wattlm-doc-cache"
    >>> str(asset_dir("wiki-sample"))
    '/tmp/wattlm-doc-cache/assets/wiki-sample'
    >>> is_cached("wiki-sample")
    False
    >>> del os.environ["WATTLM_CACHE"]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs

from wattlm.assets.catalog import Asset, get_asset

MANIFEST = ".wattlm-asset.json"


def cache_dir() -> Path:
    """The cache root: ``$WATTLM_CACHE`` if set, else the user cache folder for wattlm."""
    env = os.environ.get("WATTLM_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("wattlm"))


def asset_dir(name: str) -> Path:
    """The cache folder of asset ``name`` (which may not exist yet)."""
    return cache_dir() / "assets" / name


def asset_path(name: str) -> Path:
    """The path :func:`~wattlm.assets.fetch` returns for ``name`` (its file or folder)."""
    asset = get_asset(name)
    folder = asset_dir(name)
    return folder / asset.entry if asset.entry else folder


def manifest_for(asset: Asset) -> dict[str, Any]:
    """The identity of a complete cache entry: what must match for it to count as cached."""
    return {
        "name": asset.name,
        "sources": [s.spec for s in asset.sources],
        "files": {f.path: f.sha256 for f in asset.files},
        "prepare": asset.prepare,
    }


def read_manifest(name: str) -> dict[str, Any] | None:
    """The manifest of the cached entry, or ``None`` when absent or unreadable."""
    try:
        return json.loads((asset_dir(name) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_cached(name: str) -> bool:
    """Whether ``name`` is in the cache, complete and for the catalog's current version.

    Checks the manifest and that every kept file is there with its size (no hashing).

    Example:
        >>> if not is_cached("wiki-sample"):  # doctest: +SKIP
        ...     fetch("wiki-sample")
    """
    asset = get_asset(name)
    found = read_manifest(name)
    if found is None:
        return False
    want = manifest_for(asset)
    if any(found.get(key) != value for key, value in want.items()):
        return False
    folder = asset_dir(name)
    return all(_present(folder / f.path, f.size_bytes) for f in asset.files)


def _present(path: Path, size: int | None) -> bool:
    try:
        return path.is_file() and (size is None or path.stat().st_size == size)
    except OSError:
        return False
