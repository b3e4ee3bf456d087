"""Text corpora and labelled sets: reading, cleaning, deterministic splits.

Example:
    >>> from wattlm.data.text import load_text
    >>> from wattlm.data.labelled import load_labelled
    >>> text = load_text("wiki-sample", "test")  # doctest: +SKIP
    >>> rows = load_labelled("movie-sentiment", "test")  # doctest: +SKIP
"""
