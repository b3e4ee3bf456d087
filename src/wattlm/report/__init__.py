"""Results: the ``result.json`` schema, loading and validation, Markdown and terminal tables.

Example:
    >>> from wattlm.report import render_markdown, validate_result
    >>> from wattlm.testing.results import sample_bench_result
    >>> result = sample_bench_result()
    >>> validate_result(result)
    >>> "## Performance" in render_markdown(result)
    True
"""

from __future__ import annotations

from wattlm.report.markdown import render_markdown
from wattlm.report.result import (
    RESULT_FILE,
    SCHEMA_VERSION,
    load_result,
    load_schema,
    result_file,
    validate_result,
)
from wattlm.report.table import print_result_table

__all__ = [
    "RESULT_FILE",
    "SCHEMA_VERSION",
    "load_result",
    "load_schema",
    "print_result_table",
    "render_markdown",
    "result_file",
    "validate_result",
]
