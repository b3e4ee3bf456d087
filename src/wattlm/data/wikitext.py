"""Wiki markup to plain prose.

Templates (``{{...}}``), tables (``{|...|}``), references, comments and file, image,
category and interlanguage links are dropped; links keep their text; headings stay as plain
lines; formatting quotes and HTML tags go. A brace-matching pass removes templates and tables
before :mod:`mwparserfromhell` parses the rest, because its parser gives up (and leaves raw
markup in the text) on some malformed ones.

Example:
    >>> clean_wikitext("'''Foo''' is a [[bar|baz]].{{cite|x}}<ref>r</ref>\\n== History ==\\nOld.")
    'Foo is a baz.\\nHistory\\nOld.'
"""

from __future__ import annotations

import re

import mwparserfromhell

_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_REF = re.compile(r"<ref\b[^>]*/>|<ref\b[^>]*>.*?</ref\s*>", re.S | re.I)
_DROP_TAGS = re.compile(
    r"<(gallery|math|timeline|imagemap|score|syntaxhighlight|source|chem|hiero|references)"
    r"\b[^>]*>.*?</\1\s*>",
    re.S | re.I,
)
_INTERLANG = re.compile(r"^\[\[[a-z]{2,3}(?:-[a-z]+)*:[^\[\]]*\]\]\s*$", re.M)
_BREAK = re.compile(r"<br\s*/?>", re.I)
_DROP_LINK = re.compile(r"\[\[\s*:?\s*(?:file|image|media|category)\s*:", re.I)
_BRACKETS = re.compile(r"\[\[|\]\]")
_HTML = re.compile(r"</?[a-zA-Z][^<>]*>")
_LEFT_LINK = re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]]*)\]\]")
_QUOTES = re.compile(r"'{2,}")
_MAGIC = re.compile(r"__[A-Z]+__")
_LEAD_PUNCT = re.compile(r"^[,;:.]+\s*")
_EMPTY_PARENS = re.compile(r"\(\s*[,;:]?\s*\)")
_SPACE_PUNCT = re.compile(r"\s+([,;:.])(?=\s|$)")
_SPACES = re.compile(r"[ \t\u00a0\u2009\u200b]+")
_RESIDUE = re.compile(r"^[|!{}]|^[-=*#:;]+$")


def drop_nested(text: str, opener: str, closer: str) -> str:
    """Remove every balanced ``opener ... closer`` span, nested ones included.

    An opener that is never closed is removed alone, so one stray ``{{`` cannot swallow the
    rest of an article.

    Example:
        >>> drop_nested("a {{b {{c}} d}} e", "{{", "}}")
        'a  e'
    """
    pattern = re.compile(f"{re.escape(opener)}|{re.escape(closer)}")
    out, depth, start, last = [], 0, 0, 0
    for match in pattern.finditer(text):
        if match.group() == opener:
            if depth == 0:
                out.append(text[last : match.start()])
                start = match.end()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                last = match.end()
    out.append(text[start:] if depth else text[last:])
    return "".join(out)


def drop_links(text: str) -> str:
    """Remove file, image, media and category links, captions with nested links included.

    Example:
        >>> drop_links("a [[File:x.png|thumb|see [[b]]]] c [[Category:D]]")
        'a  c '
    """
    out, pos = [], 0
    while match := _DROP_LINK.search(text, pos):
        out.append(text[pos : match.start()])
        newline = text.find("\n", match.end())  # unclosed: drop to the end of its line
        depth, end = 0, len(text) if newline < 0 else newline
        for bracket in _BRACKETS.finditer(text, match.start()):
            depth += 1 if bracket.group() == "[[" else -1
            if depth == 0:
                end = bracket.end()
                break
        pos = end
    out.append(text[pos:])
    return "".join(out)


def clean_wikitext(text: str) -> str:
    """Turn one article's wikitext into plain text, one paragraph or heading per line."""
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _DROP_TAGS.sub("", text)
    text = _BREAK.sub(" ", _INTERLANG.sub("", text))
    text = drop_nested(text, "{{", "}}")
    text = drop_nested(text, "{|", "|}")
    text = drop_links(text)
    code = mwparserfromhell.parse(text)
    text = code.strip_code(normalize=True, collapse=True, keep_template_params=False)
    text = _LEFT_LINK.sub(r"\1", text)
    text = _HTML.sub("", text)
    text = _QUOTES.sub("", _MAGIC.sub("", text))
    for token in ("[[", "]]", "{{", "}}"):
        text = text.replace(token, "")
    lines = []
    for raw in text.splitlines():
        line = _SPACES.sub(" ", raw).strip()
        line = _SPACE_PUNCT.sub(r"\1", _EMPTY_PARENS.sub("", line)).strip()
        line = _LEAD_PUNCT.sub("", line)
        if line and not _RESIDUE.match(line):
            lines.append(line)
    return "\n".join(lines)
