"""Movie review sentences with human sentiment scores, as binary train/validation/test sets.

The raw file (VADER's ``movieReviewSnippets_GroundTruth.txt``) has lines
``id<TAB>score<TAB>text`` with CRLF endings and a mean human score in [-4, +4]. It is UTF-8
(its accents and dashes read right that way; latin-1 or cp1252 would turn ``é`` into ``Ã©``),
with cp1252 as a fallback for other files. Label 1 if the score is > 0, 0 if < 0; a score of
exactly 0 is dropped. Each sentence goes to a split by the hash of its id.

Example:
    >>> parse_line("7\\t-1.5\\tDull.")
    ('7', -1.5, 'Dull.')
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from wattlm._files import atomic_path, write_json
from wattlm.data.splits import SPLITS, assign
from wattlm.errors import WattlmError


def decode(raw: bytes) -> str:
    """Decode the file as UTF-8, falling back to cp1252 (then latin-1) for other exports."""
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def parse_line(line: str) -> tuple[str, float, str]:
    """Split one ``id<TAB>score<TAB>text`` line."""
    parts = line.rstrip("\r\n").split("\t", 2)
    if len(parts) != 3:
        raise WattlmError(f"bad sentiment line (want id<TAB>score<TAB>text): {line[:80]!r}")
    ident, score, text = parts
    try:
        return ident.strip(), float(score), text.strip()
    except ValueError:
        raise WattlmError(f"bad score {score!r} in sentiment line {ident!r}") from None


def read_sentences(path: Path) -> list[tuple[str, int, str]]:
    """``(id, label, text)`` for every line with a nonzero score, in file order."""
    rows = []
    for line in decode(path.read_bytes()).splitlines():
        if not line.strip():
            continue
        ident, score, text = parse_line(line)
        if score != 0 and text:
            rows.append((ident, 1 if score > 0 else 0, text))
    return rows


def prepare_sentiment(raw: Path, out_dir: Path) -> dict:
    """Write ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` and ``meta.json``.

    Each jsonl line is ``{"text": ..., "label": 0 or 1}``. Returns the metadata (counts per
    split and label, lines read, lines dropped for a zero score).
    """
    rows = read_sentences(raw)
    by_split = assign(rows, key=lambda row: row[0])
    for split in SPLITS:
        with atomic_path(out_dir / f"{split}.jsonl") as tmp, tmp.open("w", encoding="utf-8") as fh:
            for _ident, label, text in by_split[split]:
                fh.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    data = raw.read_bytes()
    lines = sum(1 for line in decode(data).splitlines() if line.strip())
    meta = {
        "source": raw.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "split_rule": "sha256(id) -> 80/10/10 train/validation/test",
        "labels": {"1": "score > 0", "0": "score < 0", "dropped": "score == 0"},
        "lines": lines,
        "dropped_zero_score": lines - len(rows),
        "counts": {s: len(by_split[s]) for s in SPLITS},
        "by_label": {s: _labels(by_split[s]) for s in SPLITS},
    }
    write_json(out_dir / "meta.json", meta)
    return meta


def _labels(rows: list[tuple[str, int, str]]) -> dict[str, int]:
    counts = Counter(label for _, label, _ in rows)
    return {"0": counts[0], "1": counts[1]}
