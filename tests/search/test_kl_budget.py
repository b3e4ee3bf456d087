"""A quality budget stated on KL divergence as well as perplexity (``--kl-budget``)."""

from __future__ import annotations

import math

import pytest

from wattlm.errors import WattlmError
from wattlm.search.config import OptimizeConfig
from wattlm.search.quality_budget import QualityBudget
from wattlm.search.run import optimize
from wattlm.search.synthetic import KL_PER_INCREASE, QTYPE_EFFECTS, SyntheticEvaluator


def test_constraints_are_each_bounds_excess_and_a_missing_figure_is_past_it():
    b = QualityBudget(0.02, 0.01)
    assert b.constraints({"perplexity_increase": 0.01, "kl_mean": 0.015}) == {
        "perplexity_increase": -0.01,
        "kl_mean": 0.005,
    }
    assert b.constraints({"perplexity_increase": 0.01})["kl_mean"] == math.inf
    assert not b.holds({"perplexity_increase": 0.01})
    assert QualityBudget(0.02).holds({"perplexity_increase": 0.02})  # the limit itself is in
    assert list(QualityBudget(0.02).constraints({"perplexity_increase": 0.0})) == [
        "perplexity_increase"
    ]


@pytest.mark.parametrize("bad", [0, -0.5, float("inf"), "x", True])
def test_a_bad_kl_budget_is_one_clear_error(bad):
    with pytest.raises(WattlmError, match="KL budget must be a positive number"):
        OptimizeConfig(kl_budget=bad)


def test_a_kl_budget_makes_configurations_past_it_infeasible(tmp_path):
    # q5_0 (+0.4% perplexity: KL 0.002) and q8_0 (+0.1%: KL 0.0005) are both within a 2%
    # perplexity budget; a KL budget of 0.001 nats keeps q8_0 only
    kl = {q: KL_PER_INCREASE * QTYPE_EFFECTS[q][1] for q in ("q5_0", "q8_0")}
    assert kl["q8_0"] < 0.001 < kl["q5_0"]
    common = dict(space="quick", sampler="grid", time_budget_s="none", peer=False, seed=1)
    plain = optimize(
        OptimizeConfig(**common), out_dir=tmp_path / "a", evaluator=SyntheticEvaluator(),
        progress=False,
    )  # fmt: skip
    strict = optimize(
        OptimizeConfig(**common, kl_budget=0.001), out_dir=tmp_path / "b",
        evaluator=SyntheticEvaluator(), progress=False,
    )  # fmt: skip
    assert strict["budget"]["max_kl_nats"] == 0.001 and "max_kl_nats" not in plain["budget"]
    by_label = {t["label"]: t for t in strict["trials"]}
    feasible = [t for t in strict["trials"] if t["feasible"] and t["number"] > 0]
    assert feasible, "some configuration must meet the KL budget"
    for t in feasible:
        assert t["metrics"]["kl_mean"] <= 0.001
    past = [t for t in strict["trials"] if (t["metrics"].get("kl_mean") or 0) > 0.001]
    assert past and not any(t["feasible"] for t in past)
    # the same configurations were feasible under the perplexity budget alone
    plain_feasible = {t["label"] for t in plain["trials"] if t["feasible"]}
    assert {t["label"] for t in past} & plain_feasible
    rec = by_label.get(
        next(t["label"] for t in strict["trials"] if t["number"] == strict["recommended"])
    )
    assert rec["metrics"]["kl_mean"] <= 0.001
