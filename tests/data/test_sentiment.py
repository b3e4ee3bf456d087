"""The movie-sentiment prepare step on a synthetic ground-truth file."""

from __future__ import annotations

import json

import pytest

from wattlm.data.sentiment import decode, parse_line, prepare_sentiment, read_sentences
from wattlm.data.splits import split_of
from wattlm.errors import WattlmError


def write_ground_truth(path, n=60):
    lines = []
    for i in range(1, n + 1):
        score = [2.5, -1.25, 0.0][i % 3]
        lines.append(f"{i}\t{score}\tSentence {i} about the café – fine.")
    path.write_bytes("\r\n".join(lines).encode("utf-8"))  # CRLF, no final newline
    return path


def test_parse_line_and_errors():
    assert parse_line("12\t-0.5\tMeh.\r\n") == ("12", -0.5, "Meh.")
    with pytest.raises(WattlmError, match="id<TAB>score<TAB>text"):
        parse_line("no tabs here")
    with pytest.raises(WattlmError, match="bad score"):
        parse_line("1\tgood\ttext")


def test_decode_is_utf8_with_cp1252_fallback():
    assert decode("café".encode()) == "café"
    assert decode("café – ok".encode("cp1252")) == "café – ok"


def test_labels_drop_zero_scores(tmp_path):
    rows = read_sentences(write_ground_truth(tmp_path / "gt.txt"))
    assert len(rows) == 40  # one line in three has score 0
    assert {label for _, label, _ in rows} == {0, 1}
    assert rows[0] == ("1", 0, "Sentence 1 about the café – fine.")
    assert rows[1] == ("3", 1, "Sentence 3 about the café – fine.")


def test_prepare_writes_jsonl_splits_by_id(tmp_path):
    raw = write_ground_truth(tmp_path / "gt.txt", n=300)
    meta = prepare_sentiment(raw, tmp_path)
    assert meta["lines"] == 300 and meta["dropped_zero_score"] == 100
    assert sum(meta["counts"].values()) == 200
    for split in ("train", "validation", "test"):
        rows = [json.loads(line) for line in (tmp_path / f"{split}.jsonl").open(encoding="utf-8")]
        assert len(rows) == meta["counts"][split] > 0
        assert all(set(r) == {"text", "label"} and r["label"] in (0, 1) for r in rows)
        ids = [r["text"].split()[1] for r in rows]
        assert all(split_of(i) == split for i in ids)
        by_label = meta["by_label"][split]
        assert by_label["0"] + by_label["1"] == len(rows)
        assert by_label["1"] == sum(r["label"] for r in rows)
    assert json.loads((tmp_path / "meta.json").read_text())["counts"] == meta["counts"]
