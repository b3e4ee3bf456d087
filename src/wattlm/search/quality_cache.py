"""The baseline's perplexity, cached on disk across searches by model fingerprint.

The float model's perplexity at a stage depends only on its weights, the text and the
perplexity settings; a second ``optimize`` of the same model reads it back instead of
scoring 8,192 tokens again. Entries live under the wattlm cache
(``$WATTLM_CACHE/optimize/quality/<sha256>.json``), are written atomically (temporary
file + rename: an entry is whole or absent, even after SIGKILL) and an unreadable entry is
a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def entry_path(key: dict[str, Any]) -> Path:
    """The file of the entry for ``key`` (any JSON-able mapping).

    Example:
        >>> import os; os.environ["WATTLM_CACHE"] = "/tmp/wattlm-doc-cache"
        >>> entry_path({"model": "abc", "tokens": 2048}).parent.name
        'quality'
        >>> del os.environ["WATTLM_CACHE"]
    """
    from wattlm.assets.cache import cache_dir

    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return cache_dir() / "optimize" / "quality" / f"{digest}.json"


def read_quality(key: dict[str, Any]) -> dict[str, Any] | None:
    """The cached quality dict for ``key``, or ``None`` (missing, unreadable, another key)."""
    path = entry_path(key)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    quality = entry.get("quality")
    return quality if isinstance(quality, dict) and "value" in quality else None


def write_quality(key: dict[str, Any], quality: dict[str, Any]) -> None:
    """Store ``quality`` for ``key`` atomically (a failure to write is ignored)."""
    from wattlm._files import write_json

    path = entry_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"key": key, "quality": quality})
    except OSError:
        pass
