"""Wiki dump parsing and markup stripping on a small synthetic dump."""

from __future__ import annotations

import bz2
import json

from wattlm.data.splits import split_of
from wattlm.data.wiki import prepare_wiki, read_articles
from wattlm.data.wikitext import clean_wikitext, drop_nested

NS = "http://www.mediawiki.org/xml/export-0.10/"
FILLER = " ".join(["Plenty of ordinary words make this a real article."] * 5)

ARTICLE = f"""{{{{Infobox country|name=Testland|capital=[[Capital City]]}}}}
'''Testland''' is a ''small'' [[country]] in [[Europe|western Europe]].<ref>{{{{cite web|url=http://x|title=T}}}}</ref> {FILLER}

== History ==
It was founded in 1900.<ref name="a" /> See [[Main Page|the main page]].
[[File:Flag.png|thumb|The flag, with [[red]] and [[blue]]]]
{{| class="wikitable"
|-
! Year !! Population
|-
| 1900 || 10
|}}
<!-- a hidden comment -->
=== Geography ===
Mountains.<br/>Rivers.
[[Category:Countries]]
[[de:Testland]]
"""


def page(title: str, text: str, ns: int = 0, redirect: str | None = None) -> str:
    red = f'<redirect title="{redirect}" />' if redirect else ""
    return (
        f"<page><title>{title}</title><ns>{ns}</ns><id>1</id>{red}"
        f'<revision><id>2</id><text xml:space="preserve">{text}</text></revision></page>'
    )


def dump(tmp_path, pages: list[str]):
    from xml.sax.saxutils import escape

    body = "".join(pages)
    xml = f'<mediawiki xmlns="{NS}" version="0.10"><siteinfo><sitename>W</sitename></siteinfo>{body}</mediawiki>'
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(bz2.compress(xml.encode()))
    return path, escape


def test_clean_wikitext_strips_markup():
    text = clean_wikitext(ARTICLE)
    first, *rest = text.splitlines()
    assert first.startswith("Testland is a small country in western Europe. Plenty of")
    assert rest == [
        "History",
        "It was founded in 1900. See the main page.",
        "Geography",
        "Mountains. Rivers.",
    ]
    for bad in (
        "{{",
        "}}",
        "[[",
        "]]",
        "<ref",
        "'''",
        "''",
        "{|",
        "|}",
        "thumb",
        "Category",
        "Population",
        "Infobox",
        "http",
        "comment",
        "<br",
        "de:",
    ):
        assert bad not in text, bad


def test_drop_nested_keeps_text_after_an_unclosed_opener():
    assert drop_nested("a {{b}} c {{ d", "{{", "}}") == "a  c  d"


def test_read_articles_skips_redirects_and_other_namespaces(tmp_path):
    from xml.sax.saxutils import escape

    pages = [
        page("Testland", escape(ARTICLE)),
        page("Old name", escape("#REDIRECT [[Testland]]"), redirect="Testland"),
        page("Sneaky", escape("#redirect [[Testland]]")),
        page("Talk:Testland", escape(FILLER), ns=1),
        page("Stub", "Too short."),
        page("Second", escape(f"Another article. {FILLER}")),
    ]
    path, _ = dump(tmp_path, pages)
    articles = read_articles(path)
    assert [a.title for a in articles] == ["Testland", "Second"]
    assert articles[1].text.startswith("Another article.")


def test_prepare_wiki_writes_deterministic_splits(tmp_path):
    from xml.sax.saxutils import escape

    titles = [f"Article {n}" for n in range(40)]
    pages = [page(t, escape(f"{t} text. {FILLER}")) for t in titles]
    path, _ = dump(tmp_path, pages)
    meta = prepare_wiki(path, tmp_path / "out")
    assert sum(meta["articles"].values()) == 40
    for split in ("train", "validation", "test"):
        body = (tmp_path / "out" / f"{split}.txt").read_text()
        blocks = [b for b in body.split("\n\n") if b.strip()]
        assert len(blocks) == meta["articles"][split]
        assert meta["words"][split] == len(body.split())
        assert [b.split(" text.")[0] for b in blocks] == meta["titles"][split]
        assert all(split_of(t) == split for t in meta["titles"][split])
    saved = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert saved["articles"] == meta["articles"] and len(saved["sha256"]) == 64
    again = prepare_wiki(path, tmp_path / "again")
    assert again["titles"] == meta["titles"]
    assert (tmp_path / "again" / "test.txt").read_bytes() == (
        tmp_path / "out" / "test.txt"
    ).read_bytes()
