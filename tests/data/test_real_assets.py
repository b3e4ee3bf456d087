"""Checks on the real embedded data sets, when they have been fetched (`-m assets`)."""

from __future__ import annotations

import json
import re

import pytest

from wattlm.assets import asset_dir, is_cached
from wattlm.data.labelled import load_labelled
from wattlm.data.sentiment import decode, parse_line
from wattlm.data.text import load_text

pytestmark = pytest.mark.assets


def need(name: str) -> None:
    if not is_cached(name):
        pytest.skip(f"asset not fetched: run `wattlm assets fetch {name}`")


def test_wiki_test_split_is_clean_prose():
    need("wiki-sample")
    text = load_text("wiki-sample", "test")
    assert len(text.split()) > 20_000
    for bad in ("{{", "}}", "[[", "]]", "<ref", "'''", "{|", "|}", "thumb|", "#REDIRECT"):
        assert bad not in text, bad
    assert not re.search(r"</?(ref|div|span|table)\b", text)
    meta = json.loads((asset_dir("wiki-sample") / "meta.json").read_text())
    assert sum(meta["articles"].values()) > 100


def test_sentiment_splits_cover_the_nonzero_lines():
    need("movie-sentiment")
    folder = asset_dir("movie-sentiment")
    raw = decode((folder / "movieReviewSnippets_GroundTruth.txt").read_bytes())
    lines = [parse_line(line) for line in raw.splitlines() if line.strip()]
    assert len(lines) == 10_605
    nonzero = sum(1 for _, score, _ in lines if score != 0)
    sizes = [len(load_labelled("movie-sentiment", s)) for s in ("train", "validation", "test")]
    assert sum(sizes) == nonzero
    assert all(size > 500 for size in sizes)
    assert "é" in raw and "Ã©" not in raw  # decoded right
