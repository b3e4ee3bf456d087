"""The baseline's reference distribution is computed once per model and read back after."""

from __future__ import annotations

import pytest

from wattlm.search import reference as rf
from wattlm.testing.tiny import tiny_causal_lm


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WATTLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(rf, "_LOADED", {})
    return tmp_path / "cache"


def test_computed_once_then_read_back_and_damage_is_recomputed(cache, text_file, monkeypatch):
    lm = tiny_causal_lm(seed=5)
    path = rf.ensure_reference(lm, fingerprint="f1", data=str(text_file), device="cpu")
    ref = rf.load_cached(path)
    assert path.is_file() and path.is_relative_to(cache)
    assert ref.scored_tokens == rf.SCORED_TOKENS and ref.context == rf.CONTEXT
    assert all(len(w) == rf.WINDOW for w in ref.windows)

    def boom(*a, **k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(rf, "_LOADED", {})
    monkeypatch.setattr(rf, "reference_distribution", boom)
    assert rf.ensure_reference(lm, fingerprint="f1", data=str(text_file), device="cpu") == path
    # another model's fingerprint is another file
    assert rf.reference_path(rf.reference_key("f2", str(text_file), "cpu")) != path

    path.write_bytes(b"not a safetensors file")
    monkeypatch.setattr(rf, "_LOADED", {})
    calls = []

    def counted(*a, **k):
        calls.append(1)
        return ref

    monkeypatch.setattr(rf, "reference_distribution", counted)
    assert rf.ensure_reference(lm, fingerprint="f1", data=str(text_file), device="cpu") == path
    assert calls == [1]
    assert rf.load_cached(path).scored_tokens == rf.SCORED_TOKENS
