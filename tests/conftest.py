"""Shared fixtures: tiny models, an isolated asset cache, and a local text corpus."""

from __future__ import annotations

import pytest

from wattlm.testing.tiny import tiny_causal_lm

PARAGRAPH = (
    "Energy efficiency of language models depends on how many bytes each generated token "
    "reads from memory. Smaller weights, fewer layers and better kernels all help, but only "
    "a measurement on the real machine can tell which change pays off. "
)


@pytest.fixture
def tiny_lm():
    return tiny_causal_lm()


@pytest.fixture
def text_file(tmp_path):
    """A local text corpus with enough paragraphs for deterministic splits."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(f"Paragraph {i}. " + PARAGRAPH * 3 for i in range(120)))
    return path
