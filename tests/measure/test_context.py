"""collect_context: what it records, and that it stays cheap (no torch import)."""

from __future__ import annotations

import json
import subprocess
import sys
import types

from wattlm._version import __version__
from wattlm.measure.context import collect_context


def test_fields(monkeypatch, no_pynvml) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    ctx = collect_context(threads=3)
    json.dumps(ctx)
    assert (ctx["threads"], ctx["threads_from"]) == (3, "argument")
    assert ctx["gpus"] == []
    assert ctx["cpu"]["logical_cores"] >= 1 and ctx["cpu"]["model_name"]
    assert ctx["ram_bytes"] > 0
    assert ctx["wattlm_version"] == __version__
    assert "numpy" in ctx["libraries"]
    assert "not-a-library" not in ctx["libraries"]
    assert ctx["os"]["kernel"] and ctx["python"]["version"]
    assert ctx["timestamp"].endswith("+00:00")


def test_threads_from_an_imported_torch(monkeypatch) -> None:
    fake_torch = types.SimpleNamespace(get_num_threads=lambda: 7)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    ctx = collect_context(threads=2)
    assert (ctx["threads"], ctx["threads_from"]) == (7, "torch.get_num_threads")


def test_gpus_from_nvml(fake_nvml) -> None:
    assert [g["name"] for g in collect_context()["gpus"]] == ["Fake GPU 0", "Fake GPU 1"]


def test_does_not_import_torch() -> None:
    code = (
        "import sys; from wattlm.measure.context import collect_context; "
        "from wattlm.measure.factory import make_meter; collect_context(); make_meter('auto', idle_seconds=0); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
