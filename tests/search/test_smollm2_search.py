"""A short real search on the embedded SmolLM2 (marked ``assets``): the whole pipeline, peer
included, at tiny bench settings. Figures are not checked against expectations here; the
measured default run is in docs/optimize.md."""

import importlib.util

import pytest

from wattlm.assets import is_cached
from wattlm.report.result import validate_result
from wattlm.search import OptimizeConfig, StageSettings, optimize

pytestmark = [pytest.mark.assets, pytest.mark.slow]

SPACE = """
methods:
  none: []
  int4-weight: [{method: int4-weight, group_size: 32}]
backends:
  torch: {}
  llamacpp: {qtype: [q4_0]}
batch_sizes: [4]
threads: [2]
start:
  - {method: none, backend: llamacpp, qtype: q4_0}
  - {method: int4-weight, backend: torch}
"""


def test_short_search_on_smollm2(tmp_path):
    for name in ("smollm2-135m", "wiki-sample"):
        if not is_cached(name):
            pytest.skip(f"asset {name} not fetched: run `wattlm assets fetch {name}`")
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp is not installed")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    stage = StageSettings(prompt_tokens=16, new_tokens=8, warmup=1, repeats=2, ppl_max_tokens=256)
    cfg = OptimizeConfig(
        space=str(space), n_trials=2, time_budget_s=None, threads=2, meter="estimate",
        screen=stage, full=stage, ppl_max_length=128, ppl_stride=128, remeasure=2,
    )  # fmt: skip
    record = optimize(cfg, out_dir=tmp_path / "run", progress=False)
    validate_result(record)
    assert record["peer"]["label"] == "llama.cpp default (Q4_1 file, batch 1)"
    assert record["peer"]["state"] == "complete", record["peer"]["error"]
    searched = [t for t in record["trials"] if t["number"] > 0]
    assert [t["state"] for t in searched] != ["failed", "failed"], [t["error"] for t in searched]
    assert record["ratios"]["tokens_per_joule_vs_baseline"] is not None
    assert record["recommended_model"] is not None
    assert (tmp_path / "run" / record["recommended_model"]["result_path"]).is_file()
