"""The optimize reports (report.html + report.md) say what the record says, safely."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from wattlm.cli.main import app
from wattlm.report.optimize_html import render_html
from wattlm.report.optimize_md import render_optimize_markdown
from wattlm.report.optimize_plot import pareto_figure
from wattlm.report.optimize_report import optimize_file, write_reports
from wattlm.report.optimize_view import OptimizeView
from wattlm.report.result import validate_result
from wattlm.testing.optimize_record import sample_optimize_record

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)> | `'


class _Page(HTMLParser):
    """Collects the text of each table row by table id, and every element's tag and attrs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._script = False
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs_d = dict(attrs)
        self.tags.append((tag, attrs_d))
        if tag == "table":
            self._table = attrs_d.get("id") or "?"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "script":
            self._script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "script":
            self._script = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data + " ")
        if self._script:
            self.scripts[-1] += data


def _page(record) -> tuple[str, _Page]:
    text = render_html(record)
    page = _Page()
    page.feed(text)
    return text, page


def _figure_json(page: _Page) -> dict:
    (data,) = [s for s in page.scripts if s.lstrip().startswith('{"data"')]
    return json.loads(data)


def _text(html_text: str) -> str:
    """The visible text of the page body (tags dropped, scripts removed)."""
    body = re.sub(r"<script.*?</script>", " ", html_text, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_sample_record_matches_the_result_schema():
    validate_result(sample_optimize_record())


def test_write_reports_writes_both_files_atomically(tmp_path):
    written = write_reports(sample_optimize_record(), tmp_path / "run")
    assert [p.name for p in written] == ["report.html", "report.md"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report.html", "report.md"]
    md = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert md == render_optimize_markdown(sample_optimize_record())


def test_html_is_self_contained():
    text, page = _page(sample_optimize_record())
    for tag, attrs in page.tags:
        assert not (tag == "script" and attrs.get("src")), "a script is fetched"
        assert tag != "link", "a stylesheet or resource is fetched"
        assert not (tag in ("img", "iframe") and attrs.get("src")), "an image is fetched"
    assert "@import" not in text
    assert "Plotly.newPlot" in text and "plotly.js v" not in text[:200]
    assert len(text) > 1_000_000  # the plotly.js bundle is inline


def test_headline_states_the_recommendation_in_plain_words():
    text, _ = _page(sample_optimize_record())
    words = _text(text)
    assert "#10 prune-ffn 10% + int4 g32, batch 8" in words
    assert (
        "prune-ffn (ratio 0.1) → cast to bfloat16 → int4-weight (group_size 32) on torch, "
        "batch 8, 2 threads" in words
    )
    assert "0.0703 J/token 95% CI [0.0682, 0.0724]" in words
    assert "estimated, not measured estimate:cpu-tdp-v1" in words
    assert "17.80 +1.71% vs baseline 17.50 · limit 17.85 · within budget" in words
    assert "12.2× #0 fp32 (baseline)" in words
    assert "1.58× llama.cpp default (Q4_1 file, batch 1)" in words
    assert "Tie: #10 prune-ffn 10% + int4 g32, batch 8 and #12 llama.cpp q4_0, batch 8" in words
    assert "not a win" in words


def test_front_rows_in_order_and_all_trials_listed():
    _, page = _page(sample_optimize_record())
    front = page.tables["front-table"]
    assert [row[0] for row in front[1:]] == ["1", "4", "12", "10"]
    assert front[-1][3:5] == ["+1.71%", "0.0703 [0.0682, 0.0724]"]
    trials = page.tables["trials-table"]
    assert len(trials) == 1 + 13
    failed = next(row for row in trials if row[0] == "11")
    assert "error: onnxruntime: export failed" in failed[1]
    assert "<in layer model.layers.0.mlp>" in failed[1]  # shown as text, not markup
    assert failed[2] == "failed (screen)" and failed[3] == "—"


def test_numeric_cells_carry_sort_keys(tmp_path):
    text, page = _page(sample_optimize_record())
    heads = [a for t, a in page.tags if t == "th"]
    assert {"num", "text"} == {a["data-type"] for a in heads}
    sort_keys = [a.get("data-sort") for t, a in page.tags if t == "td" and "data-sort" in a]
    assert "0.07029" in sort_keys and "" in sort_keys  # the failed trial sorts last
    assert "makeSortable" in text


def test_budget_line_drawn_at_the_limit():
    text, page = _page(sample_optimize_record())
    fig = _figure_json(page)
    (line,) = fig["layout"]["shapes"]
    assert (line["x0"], line["x1"], line["yref"]) == (2.0, 2.0, "paper")
    assert any("perplexity ≤ 17.85" in a["text"] for a in fig["layout"]["annotations"])
    assert "perplexity at most 17.85 (baseline 17.50 + 2%, on 7600 tokens)" in _text(text)


def test_plot_marks_roles_and_pins_far_points():
    fig = pareto_figure(OptimizeView(sample_optimize_record()))
    traces = {t["name"]: t for t in fig["data"]}
    assert list(traces) == [
        "Pareto front",
        "within budget",
        "over budget",
        "baseline",
        "llama.cpp default, batch 1",
        "recommended",
    ]
    assert traces["recommended"]["marker"]["symbol"] == ["star"]
    assert traces["recommended"]["x"] == [pytest.approx(1.7143)]
    assert traces["Pareto front"]["x"] == pytest.approx([-0.1143, 0.0571, 0.9143, 1.7143])
    over = traces["over budget"]
    assert over["marker"]["symbol"] == ["x", "triangle-right", "triangle-right"]  # 5, 6, 7
    assert max(over["x"]) < 100  # #7 (+2689%) pinned to the edge, not squashing the plot
    assert "off-scale: +2689%" in over["hovertext"][2]
    assert fig["layout"]["yaxis"]["type"] == "log"
    errors = traces["recommended"]["error_y"]
    assert errors["array"][0] == pytest.approx(0.0724 - 0.07029, abs=1e-4)
    assert "prune-ffn (ratio 0.1)" in traces["recommended"]["hovertext"][0]  # hover: config


def test_linear_energy_axis_when_the_range_is_narrow():
    record = sample_optimize_record()
    record["trials"] = [t for t in record["trials"] if t["number"] in (4, 9, 10, 12)]
    record["baseline"], record["peer"] = None, None
    assert "type" not in pareto_figure(OptimizeView(record))["layout"]["yaxis"]


def test_infeasible_trial_is_never_presented_as_recommended():
    record = sample_optimize_record(recommended=5)  # a buggy record naming an infeasible trial
    text, page = _page(record)
    words = _text(text)
    assert "Recommendation Note: the record recommends trial #5, but it is infeasible" in words
    assert "No configuration was recommended" in words
    assert "recommended" not in [t["name"] for t in _figure_json(page)["data"]]
    assert all("recommended" not in a.get("class", "") for t, a in page.tags if t == "tr")
    md = render_optimize_markdown(record)
    assert "★" not in md and "the record recommends trial #5, but it is infeasible" in md


def test_no_feasible_trial_says_so():
    record = sample_optimize_record(recommended=None, recommended_model=None, pareto=[])
    for trial in record["trials"]:
        trial.update(feasible=False, pareto=False)
        trial["state"] = "failed" if trial["state"] == "failed" else "infeasible"
    record["ratios"] = {"tokens_per_joule_vs_baseline": None, "tokens_per_joule_vs_peer": None}
    message = (
        "No configuration met the budget (perplexity at most 17.85 (baseline 17.50 + 2%, on "
        "7600 tokens)): all 13 trials were infeasible or failed. Nothing is recommended."
    )
    text, _ = _page(record)
    assert message in _text(text)
    assert "No trial is on the Pareto front." in _text(text)
    md = render_optimize_markdown(record)
    assert f"**{message}**" in md
    assert "## Pareto front\n\nNone." in md


def test_labels_and_notes_are_escaped():
    record = sample_optimize_record(notes=[EVIL])
    record["trials"][10]["label"] = EVIL  # the recommended trial
    record["trials"][3]["params"]["evil"] = EVIL
    record["model"]["spec"] = EVIL
    record["config"]["model"] = EVIL
    record["context"]["cpu"]["model_name"] = EVIL
    text, page = _page(record)
    assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert sum(t == "script" for t, _ in page.tags) == 3  # plotly, figure data, our script
    assert text.count("</script>") == 3
    data = next(s for s in page.scripts if s.lstrip().startswith('{"data"'))
    assert "<" not in data and ">" not in data  # cannot close the script element
    hover = json.loads(data)["data"][-1]["hovertext"][0]
    assert "&lt;script&gt;" in hover and "<script>" not in hover  # plotly shows it as text
    md = render_optimize_markdown(record)
    assert "<script>" not in md and "<img" not in md
    assert '&lt;script&gt;alert("x")&lt;/script&gt;' in md
    assert "\\| `" in md  # a pipe cannot split a table cell


def test_null_metrics_and_missing_sections_render():
    record = sample_optimize_record(
        peer=None, context=None, recommended_model=None, energy_source=None, notes=None
    )
    record["ratios"] = None
    rec = record["trials"][10]
    rec["metrics"].update(
        energy_j_per_token=None, decode_tokens_per_s=None, perplexity_increase=None
    )
    record["trials"][2]["metrics"] = None
    record["trials"][3]["metrics"] = {}
    record["trials"][4]["metrics"]["energy_j_per_token"] = {"median": 0.08, "ci95": None}
    record["trials"][5]["duration_s"] = None
    text, page = _page(record)
    words = _text(text)
    assert "decode-energy — no energy figure" in words
    assert "17.80 +1.71% vs baseline 17.50" in words  # increase computed from perplexity
    assert "tokens per joule vs baseline —" in words
    assert "tokens per joule vs llama.cpp" not in words
    assert "llama.cpp default" not in [t["name"] for t in _figure_json(page)["data"]]
    row4 = next(r for r in page.tables["trials-table"] if r[0] == "4")
    assert "0.0800" in row4  # no interval, no crash
    md = render_optimize_markdown(record)
    assert "no energy figure" in md and "## Context" in md


def test_non_finite_figures_neither_crash_nor_leak_into_the_plot():
    record = sample_optimize_record()
    record["trials"][7]["metrics"].update(perplexity=float("inf"), perplexity_increase=None)
    record["trials"][5]["metrics"]["energy_j_per_token"] = {
        "median": float("nan"),
        "ci95": [float("nan"), float("inf")],
    }
    record["trials"][2]["metrics"]["energy_j_per_token"]["ci95"] = [0.1, float("inf")]
    text, page = _page(record)
    traces = {t["name"]: t for t in _figure_json(page)["data"]}
    over = traces["over budget"]
    assert len(over["x"]) == 2  # #5 (no energy) left out; #7 (infinite perplexity) pinned
    assert "off-scale: +inf%" in over["hovertext"][1]
    assert max(traces["within budget"]["error_y"]["array"]) < 1  # the infinite arm is dropped
    row7 = next(r for r in page.tables["trials-table"] if r[0] == "7")
    assert "inf" in row7
    assert 'data-sort="Infinity"' in text


def test_nothing_to_plot_says_so():
    record = sample_optimize_record(peer=None)
    for trial in record["trials"]:
        trial["metrics"]["energy_j_per_token"] = None
    text, page = _page(record)
    assert "Nothing to plot: no trial has both a perplexity and an energy figure." in text
    assert 'id="pareto-plot"' not in text
    assert [t["name"] for t in _figure_json(page)["data"]] == []


def test_record_with_unknown_keys_and_no_trials():
    record = sample_optimize_record(trials=[], pareto=[], ties=[], recommended=None)
    record["future_field"] = {"x": 1}
    text, _ = _page(record)
    assert "The search recorded no trials." in _text(text)
    assert "The search recorded no trials." in render_optimize_markdown(record)


def test_markdown_has_headline_front_trials_context_and_notes():
    md = render_optimize_markdown(sample_optimize_record())
    assert md.startswith("# wattlm optimize: smollm2-135m\n\n2026-11-22 09:30:00 UTC")
    assert (
        "- decode-energy: **0.0703 [0.0682, 0.0724] J/token (median [95% CI])**, estimated, "
        "not measured" in md
    )
    assert "- 12.2× the tokens per joule of #0 fp32 (baseline)" in md
    assert "- **tie** with #12 llama.cpp q4_0, batch 8" in md
    assert (
        "| 10 ★ | prune-ffn 10% + int4 g32, batch 8 | prune-ffn (ratio 0.1) → cast to bfloat16 "
        "→ int4-weight (group_size 32) on torch, batch 8, 2 threads | 17.80 | +1.71% | "
        "0.0703 [0.0682, 0.0724] | 207 [201, 213] |" in md
    )
    assert "| 7 | wanda 50% |" in md and "| infeasible (screen) | 488.0 | +2689% |" in md
    assert "unsupported operator 'aten::_weight_int4pack_mm_for_cpu' &lt;in layer" in md
    assert "| llama.cpp default (Q4_1 file, batch 1) |" in md
    assert "- CPU: Intel(R) Xeon(R) Platinum 8481C" in md
    assert "- Weights come from a Q4_1 GGUF dequantized to float" in md


def test_optimize_file_finds_the_record(tmp_path):
    (tmp_path / "optimize.json").write_text(json.dumps(sample_optimize_record()))
    other = tmp_path / "renamed.json"
    other.write_text(json.dumps(sample_optimize_record()))
    (tmp_path / "bench.json").write_text('{"kind": "bench"}')
    assert optimize_file(tmp_path) == tmp_path / "optimize.json"
    assert optimize_file(other) == other
    assert optimize_file(tmp_path / "bench.json") is None
    assert optimize_file(tmp_path / "missing") is None


@pytest.mark.parametrize("target", ["folder", "file"])
def test_cli_report_regenerates_both_files(tmp_path, target):
    run = tmp_path / "opt"
    run.mkdir()
    record = sample_optimize_record()
    (run / "optimize.json").write_text(json.dumps(record))
    arg = run if target == "folder" else run / "optimize.json"
    result = CliRunner().invoke(app, ["report", str(arg), "--no-print"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in run.iterdir()) == ["optimize.json", "report.html", "report.md"]
    assert (run / "report.md").read_text(encoding="utf-8") == render_optimize_markdown(record)
    assert "Plotly.newPlot" in (run / "report.html").read_text(encoding="utf-8")


def test_cli_report_out_folder_and_invalid_record(tmp_path):
    run = tmp_path / "opt"
    run.mkdir()
    record = sample_optimize_record()
    (run / "optimize.json").write_text(json.dumps(record))
    result = CliRunner().invoke(app, ["report", str(run), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.md"]
    assert "wattlm optimize: smollm2-135m" in result.output  # printed on the terminal
    bad = copy.deepcopy(record)
    del bad["created_utc"]
    (run / "optimize.json").write_text(json.dumps(bad))
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code != 0
    assert not (run / "report.html").exists()
