"""load_text and load_labelled: local files, asset names, splits and errors."""

from __future__ import annotations

import importlib
import json

import pytest

from wattlm.data import labelled, text
from wattlm.data.labelled import load_labelled
from wattlm.data.splits import SPLITS, assign, check_split, split_of
from wattlm.data.text import load_text
from wattlm.errors import WattlmError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WATTLM_CACHE", str(tmp_path / "cache"))


def paragraphs(n: int) -> list[str]:
    return [f"Paragraph number {i} has a few words.\nAnd a second line." for i in range(n)]


def test_split_rule_is_stable_and_covers_everything():
    keys = [str(i) for i in range(2000)]
    groups = assign(keys, key=str)
    assert sorted(k for keys_ in groups.values() for k in keys_) == sorted(keys)
    assert 0.75 < len(groups["train"]) / 2000 < 0.85
    assert 0.07 < len(groups["test"]) / 2000 < 0.13
    assert split_of("Albert Einstein") == "train"  # fixed forever: changing it moves data
    assert [split_of(k) for k in ("5", "6", "g")] == ["test", "test", "validation"]
    with pytest.raises(WattlmError, match="unknown split 'dev'"):
        check_split("dev")


def test_local_txt_is_split_by_paragraph(tmp_path):
    paras = paragraphs(60)
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(paras), encoding="utf-8")
    parts = {s: load_text(str(path), s) for s in SPLITS}
    got = [p for s in SPLITS for p in parts[s].split("\n\n")]
    assert sorted(got) == sorted(paras)
    assert all(split_of(p) == "test" for p in parts["test"].split("\n\n"))
    assert load_text(str(path), None) == "\n\n".join(paras)
    assert load_text(str(path), "test") == parts["test"]  # deterministic


def test_small_file_errors_clearly(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("Just one line.\n")
    split = SPLITS[1] if split_of("Just one line.") == "train" else "train"
    with pytest.raises(WattlmError, match="too small"):
        load_text(str(path), split)


def test_missing_path_and_bad_names(tmp_path):
    with pytest.raises(WattlmError, match="no such text asset or file"):
        load_text(str(tmp_path / "absent.txt"))
    with pytest.raises(WattlmError, match="not a text corpus"):
        load_text("movie-sentiment")
    with pytest.raises(WattlmError, match="unknown split"):
        load_text("wiki-sample", "dev")


def test_asset_name_is_fetched_on_demand(tmp_path, monkeypatch):
    folder = tmp_path / "wiki"
    folder.mkdir()
    for split in SPLITS:
        (folder / f"{split}.txt").write_text(f"{split} text\n")
        (folder / f"{split}.jsonl").write_text(json.dumps({"text": split, "label": 1}) + "\n")
    asked = []
    fetch_module = importlib.import_module("wattlm.assets.fetch")
    monkeypatch.setattr(fetch_module, "ensure", lambda name: asked.append(name) or folder)
    assert load_text("wiki-sample", "validation") == "validation text"
    assert load_labelled("movie-sentiment", "test") == [("test", 1)]
    assert asked == ["wiki-sample", "movie-sentiment"]
    assert load_text(str(folder), "train") == "train text"  # a folder of split files
    assert len(load_labelled(str(folder), None)) == 3
    assert text.text_assets() == ["wiki-sample"]
    assert labelled.labelled_assets() == ["movie-sentiment"]


def test_labelled_jsonl_and_tsv(tmp_path):
    rows = [(f"sentence {i}", i % 2) for i in range(80)]
    jsonl = tmp_path / "set.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    tsv = tmp_path / "set.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    assert load_labelled(str(jsonl), None) == rows == load_labelled(str(tsv), None)
    test = load_labelled(str(tsv), "test")
    assert test and all(split_of(t) == "test" for t, _ in test)
    assert sum(len(load_labelled(str(jsonl), s)) for s in SPLITS) == 80


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("bad.jsonl", '{"text": "a", "label": "1"}\n', "label must be an integer"),
        ("bool.jsonl", '{"text": "a", "label": true}\n', "label must be an integer"),
        ("nokey.jsonl", '{"sentence": "a"}\n', "JSON object with text and label"),
        ("bad.tsv", "a\tpositive\n", "label must be an integer"),
        ("notab.tsv", "just text\n", "text<TAB>label"),
        ("set.csv", "a,1\n", "want a .jsonl or .tsv"),
    ],
)
def test_labelled_errors(tmp_path, name, body, message):
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(WattlmError, match=message):
        load_labelled(str(path), None)


def test_labelled_missing_file(tmp_path):
    with pytest.raises(WattlmError, match="no such labelled asset or file"):
        load_labelled(str(tmp_path / "absent.jsonl"))
