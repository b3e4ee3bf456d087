"""The recipes' tests share the engine tests' tiny models, data and fast options."""

from __future__ import annotations

from ..training.conftest import (  # noqa: F401  (fixtures are found by name)
    clf,
    data_cfg,
    labelled_file,
    lm,
    no_dropout,
    opts,
    text_file,
    toy_rows,
    write_jsonl,
)
