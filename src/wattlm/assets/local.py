"""The offline route: pair each source of an asset with a local file instead of downloading.

A local file can be the package's wheel or sdist (matched by its file name), the nested
archive, the bare member file, or, for a multi-part asset, the joined file itself.

Example:
    >>> from wattlm.assets.catalog import CATALOG
    >>> plan_sources(CATALOG["wiki-sample"], None)[0][1] is None  # None: download it
    True
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from wattlm.assets.catalog import Asset, Source
from wattlm.errors import WattlmError

PathLike = str | os.PathLike[str]


def _norm(text: str) -> str:
    return re.sub(r"[-_.]+", "_", text).lower()


def plan_sources(
    asset: Asset, archive: PathLike | Sequence[PathLike] | None
) -> list[tuple[Source, Path | None]]:
    """Pair each source with a local file (or ``None``: download it)."""
    if archive is None:
        return [(s, None) for s in asset.sources]
    given = [Path(archive)] if isinstance(archive, (str, os.PathLike)) else [*map(Path, archive)]
    for path in given:
        if not path.exists():
            raise WattlmError(f"no such file: {path}", hint="pass the wheel, sdist or member")
    if len(given) == 1 and len(asset.sources) == 1:
        return [(asset.sources[0], given[0])]
    plan: list[tuple[Source, Path | None]] = []
    covered: set[str] = set()
    for source in asset.sources:
        if source.dest in covered:
            continue
        dest_name = PurePosixPath(source.dest).name
        shared = sum(s.dest == source.dest for s in asset.sources) > 1
        names = {PurePosixPath(source.nested or source.member).name, dest_name}
        stem = _norm(f"{source.package}-{source.version}-")
        whole = [p for p in given if shared and p.name == dest_name]
        hits = whole or [p for p in given if p.name in names or _norm(p.name).startswith(stem)]
        if not hits:
            raise WattlmError(
                f"no local file given for {source.spec} (part of {asset.name})",
                hint="pass one --from per part: each wheel/sdist or its member file",
            )
        if whole:
            covered.add(source.dest)  # the joined file itself stands for all its parts
        plan.append((source, hits[0]))
    used = {p for _, p in plan}
    if unused := [str(p) for p in given if p not in used]:
        raise WattlmError(f"{asset.name} does not use: {', '.join(unused)}")
    return plan
