"""Fixtures for the search tests: a tiny saved Llama, a text file, small spaces."""

from __future__ import annotations

import pytest

from wattlm.search.config import OptimizeConfig, StageSettings

TINY_SPACE = """
name: tiny
methods:
  none: []
  bf16: [{method: cast, dtype: bfloat16}]
  int4-weight:
    stages: [{method: int4-weight, group_size: $group_size}]
    params: {group_size: [32, 64]}
backends:
  torch: {}
  llamacpp: {qtype: [q8_0, q4_0]}
batch_sizes: [1, 2]
threads: [1]
start:
  - {method: none, backend: llamacpp, qtype: q8_0, batch_size: 2}
"""
#: a space where every choice has a synthetic figure (see wattlm.search.synthetic)
SYNTHETIC_SPACE = """
name: synthetic
methods:
  none: []
  bf16: [{method: cast, dtype: bfloat16}]
  int8-weight: [{method: int8-weight}]
  int4-weight:
    stages: [{method: int4-weight, group_size: $group_size}]
    params: {group_size: [32, 64, 128]}
  prune-ffn+int4:
    stages: [{method: prune-ffn, ratio: $ratio}, {method: int4-weight, group_size: 32}]
    params: {ratio: [0.05, 0.1]}
backends:
  torch: {}
  llamacpp: {qtype: [q4_0, q4_1, q5_0, q8_0]}
batch_sizes: [1, 4, 8]
threads: [1, 2]
start:
  - {method: none, backend: llamacpp, qtype: q4_0, batch_size: 8, threads: 2}
"""


@pytest.fixture
def synthetic_space(tmp_path):
    path = tmp_path / "synthetic.yaml"
    path.write_text(SYNTHETIC_SPACE)
    return str(path)


@pytest.fixture
def tiny_space(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return str(path)


@pytest.fixture
def tiny_model_dir(tmp_path):
    from wattlm.models.load import save_model
    from wattlm.testing.tiny import tiny_causal_lm

    return str(save_model(tiny_causal_lm(seed=1, max_positions=512), tmp_path / "tiny-llama"))


@pytest.fixture
def tiny_config():
    return _tiny_config


@pytest.fixture
def check_pruned_cost():
    """``check_pruned_cost(record, pruned)``: a train search's cost counts its one pruned
    trial's joules and every trial's; returns the total joules."""
    return _check_pruned_cost


def _check_pruned_cost(record: dict, pruned: dict) -> float:
    cost = record["search_cost"]
    assert cost["pruned"] == 1
    assert cost["pruned_energy_j"] == pytest.approx(pruned["energy_j"] + pruned["eval_energy_j"])
    total = sum(t["energy_j"] + t["eval_energy_j"] for t in record["trials"])
    assert cost["energy_j"] == pytest.approx(total)
    return total


@pytest.fixture
def synthetic_config():
    return _synthetic_config


def _tiny_config(model: str, data: str, space: str, **kw) -> OptimizeConfig:
    """Bench settings small enough for a tiny model and a unit test."""
    screen = StageSettings(prompt_tokens=16, new_tokens=4, warmup=0, repeats=2, ppl_max_tokens=200)
    full = StageSettings(prompt_tokens=16, new_tokens=4, warmup=0, repeats=3, ppl_max_tokens=300)
    base = dict(
        model=model,
        data=data,
        space=space,
        time_budget_s=None,
        threads=1,
        meter="estimate",
        screen=screen,
        full=full,
        ppl_max_length=64,
        ppl_stride=32,
        remeasure=1,
    )
    return OptimizeConfig(**{**base, **kw})


def _synthetic_config(space: str, **kw) -> OptimizeConfig:
    base = dict(space=space, time_budget_s=None, threads=2, n_trials=16, model="synthetic")
    return OptimizeConfig(**{**base, **kw})
