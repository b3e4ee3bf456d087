"""Atomic writes: nothing half-written at the target, ordinary file modes."""

import os
import stat

import pytest

from wattlm._files import atomic_path, write_json, write_text


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_and_folders_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        assert _mode(write_text(tmp_path / "r.md", "x")) == 0o644
        with atomic_path(tmp_path / "d", directory=True) as tmp:
            (tmp / "f").write_text("y")
        assert _mode(tmp_path / "d") == 0o755
    finally:
        os.umask(old)


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_json(tmp_path / "result.json", {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_folder_is_replaced_whole(tmp_path):
    for content in ("old", "new"):
        with atomic_path(tmp_path / "model", directory=True) as tmp:
            (tmp / content).write_text(content)
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
