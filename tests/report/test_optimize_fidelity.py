"""The optimize reports show KL and top-1 agreement when the search measured them."""

from __future__ import annotations

from wattlm.report.optimize_html import render_html
from wattlm.report.optimize_md import render_optimize_markdown as render_markdown
from wattlm.report.result import validate_result
from wattlm.testing.optimize_record import sample_optimize_record


def test_fidelity_column_only_when_measured_and_kl_budget_in_words():
    plain = sample_optimize_record()
    assert "KL nats / top-1" not in render_markdown(plain)
    record = sample_optimize_record()
    for i, trial in enumerate(record["trials"]):
        trial["metrics"].update(kl_mean=0.001 * (i + 1), top1_agreement=0.99 - 0.01 * i)
    record["budget"]["max_kl_nats"] = 0.05
    validate_result(record)
    md = render_markdown(record)
    assert "| KL nats / top-1 |" in md
    second = record["trials"][1]
    assert f"| {second['metrics']['kl_mean']:.2g} / 98.0% |" in md
    assert "mean KL from the baseline at most 0.05 nats/token" in md
    assert "KL nats / top-1" in render_html(record)
