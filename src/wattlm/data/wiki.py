"""The Wikipedia sample: MediaWiki XML dump (bz2) to clean train/validation/test text.

Pages are streamed with :func:`xml.etree.ElementTree.iterparse`; redirects and pages outside
the article namespace are skipped, markup is stripped (:mod:`wattlm.data.wikitext`), and each
article goes to a split by the hash of its title (:mod:`wattlm.data.splits`). A split file
holds its articles in dump order, separated by blank lines.

Example:
    >>> meta = prepare_wiki(Path("enwiki-....xml.bz2"), Path("out"))  # doctest: +SKIP
    >>> meta["articles"]  # doctest: +SKIP
    {'train': 85, 'validation': 11, 'test': 10}
"""

from __future__ import annotations

import bz2
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from wattlm._files import write_json, write_text
from wattlm.data.splits import SPLITS, assign
from wattlm.data.wikitext import clean_wikitext

MIN_WORDS = 30  # shorter articles (stubs, disambiguation leftovers) are not "real text"


@dataclass(frozen=True)
class Article:
    """One cleaned article."""

    title: str
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def iter_pages(stream: IO[bytes]) -> Iterator[tuple[str, str]]:
    """Yield ``(title, wikitext)`` of every article page: namespace 0, not a redirect."""
    for _event, elem in ET.iterparse(stream, events=("end",)):
        if _local(elem.tag) != "page":
            continue
        title = ns = text = None
        redirect = False
        for child in elem.iter():
            name = _local(child.tag)
            if name == "title" and title is None:
                title = child.text or ""
            elif name == "ns" and ns is None:
                ns = (child.text or "").strip()
            elif name == "text" and text is None:
                text = child.text or ""
            elif name == "redirect":
                redirect = True
        elem.clear()
        if redirect or ns != "0" or not title or text is None:
            continue
        if text.lstrip()[:9].upper() == "#REDIRECT":
            continue
        yield title, text


def read_articles(path: Path, *, min_words: int = MIN_WORDS) -> list[Article]:
    """Parse a ``.xml`` or ``.xml.bz2`` dump into cleaned articles with real text."""
    opener = bz2.open if path.suffix == ".bz2" else open
    with opener(path, "rb") as stream:
        articles = [Article(t, clean_wikitext(x)) for t, x in iter_pages(stream)]
    return [a for a in articles if a.words >= min_words]


def prepare_wiki(raw: Path, out_dir: Path) -> dict:
    """Write ``train.txt``, ``validation.txt``, ``test.txt`` and ``meta.json`` from a dump.

    Returns the metadata written to ``meta.json`` (articles, words and titles per split, the
    source file and its sha256).
    """
    articles = read_articles(raw)
    by_split = assign(articles, key=lambda a: a.title)
    for split in SPLITS:
        body = "\n\n".join(a.text for a in by_split[split])
        write_text(out_dir / f"{split}.txt", body + "\n" if body else "")
    meta = {
        "source": raw.name,
        "sha256": hashlib.sha256(raw.read_bytes()).hexdigest(),
        "split_rule": "sha256(title) -> 80/10/10 train/validation/test",
        "articles": {s: len(by_split[s]) for s in SPLITS},
        "words": {s: sum(a.words for a in by_split[s]) for s in SPLITS},
        "titles": {s: [a.title for a in by_split[s]] for s in SPLITS},
    }
    write_json(out_dir / "meta.json", meta)
    return meta
