"""Backends answer for themselves: availability, checks, auto selection, options, search rules."""

import pytest

from wattlm.bench.backends import BACKENDS, backend_class
from wattlm.bench.config import BenchConfig
from wattlm.bench.runner import resolve_backends
from wattlm.errors import WattlmError


@pytest.mark.parametrize("name", list(BACKENDS))
def test_each_backend_is_registered_under_its_own_name(name):
    cls = backend_class(name)
    assert cls.name == name
    assert cls.requires is None or cls.extra  # a missing package names its extra


def test_a_missing_package_is_an_error_with_the_extra(monkeypatch):
    cls = backend_class("llamacpp")
    monkeypatch.setattr(cls, "requires", "wattlm_no_such_package")
    assert not cls.is_available()
    with pytest.raises(WattlmError, match="needs the wattlm_no_such_package package") as err:
        cls.check_available()
    assert err.value.hint == 'pip install "wattlm[llamacpp]"'


def test_auto_runs_what_the_backends_select(tiny_lm, monkeypatch):
    cfg = BenchConfig(backends=("auto",))
    assert resolve_backends(cfg, tiny_lm) == ["torch"]  # not a GGUF file
    monkeypatch.setattr(
        backend_class("onnxruntime"), "auto_selects", classmethod(lambda c, m: True)
    )
    assert resolve_backends(cfg, tiny_lm) == ["torch", "onnxruntime"]


def test_torch_options_and_run_dtype(tiny_lm):
    cfg = BenchConfig(threads=2, dtype="bfloat16", new_tokens=8, prompt_tokens=16)
    torch_cls, llama = backend_class("torch"), backend_class("llamacpp")
    assert torch_cls.options(tiny_lm, cfg, 4) == {"model": tiny_lm.model, "threads": 2}
    assert torch_cls.run_dtype(cfg, {}) == "bfloat16"
    assert llama.run_dtype(cfg, {"file_type": "Q4_0"}) == "Q4_0"
    assert llama.options(tiny_lm, cfg, 4)["context_tokens"] == 16 + 8 + 8
    assert not torch_cls.isolated and llama.isolated


def test_search_rules_are_the_backends_own():
    llama, onnx, torch_cls = (backend_class(n) for n in ("llamacpp", "onnxruntime", "torch"))
    assert llama.runs_gguf and not onnx.runs_gguf and not torch_cls.runs_gguf
    assert "int4-weight" in llama.replaces_stages and not torch_cls.replaces_stages
    assert llama.incompatible({"lowrank", "prune"}) == (
        "lowrank layers cannot be exported to GGUF for llama.cpp"
    )
    assert torch_cls.incompatible({"lowrank", "int8-weight"}) is None
