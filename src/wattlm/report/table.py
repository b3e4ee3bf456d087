"""The performance table of a result: cells shared by Markdown and the terminal.

Every figure is written ``median [ci95_low, ci95_high]``, followed by ``⚠`` when the result
flags it as noisy; an energy figure from an estimate carries ``†`` on its source label.

Example:
    >>> from wattlm.testing.results import sample_bench_result
    >>> headers, rows = performance_rows(sample_bench_result())
    >>> [row[:2] for row in rows]
    [['torch float32', '1'], ['torch float32', '8'], ['llamacpp q4_1', '1']]
"""

from __future__ import annotations

from typing import Any

from wattlm.report._format import (
    ESTIMATE_MARK,
    ESTIMATE_NOTE,
    J_PER_KWH,
    NOISY_MARK,
    format_bytes,
    format_count,
    format_number,
    format_stat,
    quality_sentence,
    served_quality_sentences,
    source_label,
)

PERFORMANCE_HEADERS = [
    "backend",
    "batch",
    "TTFT s",
    "prefill tok/s",
    "prefill J/tok",
    "decode tok/s",
    "decode J/tok",
    "gCO2e / 1k decode tok",
    "energy source",
]
MEASURE_HEADERS = ["exit code", "time s", "CPU time s", "energy J", "gCO2e", "energy source"]


def performance_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and one row of cells per run (backend, batch) of a bench result.

    A ``threads`` column is added only when the runs used different thread counts, and a
    ``decode J/tok marginal`` column (the energy the work added over idle) when the result
    has that view (schema 2); ``J/tok`` columns are the ``total`` view.
    """
    runs = result["runs"]
    headers = list(PERFORMANCE_HEADERS)
    vary_threads = len({r["threads"] for r in runs}) > 1
    if vary_threads:
        headers.insert(2, "threads")
    marginal = any("energy_marginal_j_per_token" in r["decode"] for r in runs)
    if marginal:
        headers.insert(headers.index("decode J/tok") + 1, "decode J/tok marginal")
    rows = []
    for run in runs:
        pre, dec = run["prefill"], run["decode"]
        row = [f"{run['backend']} {run['dtype']}", str(run["batch_size"])]
        row += [str(run["threads"])] if vary_threads else []
        row += [
            format_stat(pre["time_to_first_token_s"]),
            format_stat(pre["tokens_per_s"]),
            format_stat(pre["energy_j_per_token"]),
            format_stat(dec["tokens_per_s"]),
            format_stat(dec["energy_j_per_token"]),
            *([format_stat(dec.get("energy_marginal_j_per_token"))] if marginal else []),
            format_stat(dec["gco2e_per_token"], 1000),
            source_label(run["energy_source"]),
        ]
        rows.append(row)
    return headers, rows


def measure_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and the single row of a ``kind: "measure"`` result."""
    m = result["measurement"]
    energy_j, cpu_s = m["energy_j"], m["cpu_time_s"]
    grams = (
        None
        if energy_j is None
        else energy_j / J_PER_KWH * result["carbon"]["grid_intensity_g_per_kwh"]
    )
    cells = [str(result["exit_code"]), format_number(m["time_s"])]
    values = [cpu_s, energy_j, grams]
    headers = list(MEASURE_HEADERS)
    if "energy_marginal_j" in m:  # schema 2: the energy the command added over idle too
        headers.insert(headers.index("energy J") + 1, "marginal J")
        values.insert(2, m["energy_marginal_j"])
    cells += ["—" if v is None else format_number(v) for v in values]
    return headers, [[*cells, source_label(m["source"])]]


def result_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """:func:`performance_rows` or :func:`measure_rows`, by the result's kind."""
    return performance_rows(result) if result["kind"] == "bench" else measure_rows(result)


def _cell(text: str) -> Any:
    """A terminal cell: the median (and ``⚠``) on one line, the interval dimmed below."""
    from rich.text import Text

    head, sep, tail = text.partition(" [")
    noisy = NOISY_MARK in text
    cell = Text(head + (f" {NOISY_MARK}" if noisy and sep else ""), style="yellow" if noisy else "")
    if sep:
        cell.append("\n[" + tail.replace(f" {NOISY_MARK}", ""), style="dim")
    return cell


def _print_model(result: dict[str, Any], console: Any) -> None:
    model, memory = result["model"], result["memory"]
    console.print(
        f"[bold]{model['spec']}[/bold] · {model['architecture']} {model['dtype']} · "
        f"{format_count(model['parameters'])} parameters · weights "
        f"{format_bytes(model['weight_bytes'])} · on disk {format_bytes(model['disk_bytes'])} "
        f"· peak RSS {format_bytes(memory['peak_rss_bytes'])}",
        highlight=False,
    )
    console.print(quality_sentence(result["quality"]).replace("**", ""), highlight=False)
    for sentence in served_quality_sentences(result):
        console.print(sentence.replace("**", ""), highlight=False)


def print_result_table(result: dict[str, Any], console: Any = None) -> None:
    """Print the result's table on the terminal (a ``rich`` table) and its footnotes.

    When every row has the same energy source, the label moves from its column to the
    table's caption.

    Example:
        >>> import io
        >>> from rich.console import Console
        >>> from wattlm.testing.results import sample_measure_result
        >>> console = Console(width=100, record=True, file=io.StringIO())
        >>> print_result_table(sample_measure_result(), console)
        >>> "energy source: estimate:cpu-tdp-v1†" in console.export_text()
        True
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if result["kind"] == "bench":
        _print_model(result, console)
    headers, rows = result_rows(result)
    caption = None
    if len({row[-1] for row in rows}) == 1:
        caption = f"energy source: {rows[0][-1]}"
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    title = "median [95% CI]" if result["kind"] == "bench" else None
    table = Table(
        title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    for i, header in enumerate(headers):
        if header == "energy source":  # never cut a label
            table.add_column(header, no_wrap=True, min_width=max(len(r[i]) for r in rows))
        else:
            table.add_column(header, justify="left" if header == "backend" else "right")
    for row in rows:
        table.add_row(*(_cell(c) for c in row))
    console.print(table)
    if (caption and ESTIMATE_MARK in caption) or any(ESTIMATE_MARK in r[-1] for r in rows):
        console.print(f"{ESTIMATE_MARK} estimate: {ESTIMATE_NOTE}", style="dim", highlight=False)
    if any(NOISY_MARK in c for row in rows for c in row):
        console.print(f"{NOISY_MARK} noisy: coefficient of variation above the threshold")
