"""The recipe skeleton: a recipe overrides only its hooks; run_recipe calls them in order."""

import pytest
import torch

from wattlm.errors import WattlmError
from wattlm.report.result import load_result
from wattlm.testing.tiny import tiny_causal_lm
from wattlm.train.config import FinetuneConfig
from wattlm.train.recipe import Recipe, RecipeRun, run_recipe

from .conftest import data_cfg, opts


class Traced(Recipe):
    """Fine-tuning that records each hook it reaches and freezes the embeddings."""

    def __init__(self, config, **kw):
        super().__init__(config, **kw)
        self.calls: list[str] = []

    def check(self, run: RecipeRun) -> None:
        self.calls.append("check")

    def load(self, run: RecipeRun):
        self.calls.append("load")
        return super().load(run)

    def build(self, run: RecipeRun):
        self.calls.append("build")
        assert run.data is not None and run.task == "causal-lm"
        run.model = run.base
        run.base.model.get_input_embeddings().weight.requires_grad_(False)
        return run.base

    def evaluate_before(self, run: RecipeRun):
        self.calls.append("evaluate_before")
        return {"before": super().evaluate_before(run)["before"]}

    def loss_module(self, run: RecipeRun) -> torch.nn.Module:
        self.calls.append("loss_module")
        return super().loss_module(run)

    def after_training(self, run: RecipeRun) -> None:
        self.calls.append(f"after_training:{run.loop.steps}")

    def result_fields(self, run: RecipeRun):
        self.calls.append("result_fields")
        return {"notes": ["traced"]}


def test_hooks_run_in_order_and_shape_the_result(tmp_path, text_file):
    lm = tiny_causal_lm()
    frozen = lm.model.get_input_embeddings().weight.detach().clone()
    cfg = FinetuneConfig(model="tiny", data=data_cfg(str(text_file), seq_len=16), options=opts())
    recipe = Traced(cfg, model=lm)
    result = run_recipe(recipe, tmp_path / "run", progress=False)
    assert recipe.calls == [
        "check",
        "load",
        "build",
        "evaluate_before",
        "loss_module",
        "after_training:3",
        "result_fields",
    ]
    assert load_result(tmp_path / "run") == result
    assert {k for k, v in result["quality"].items() if v} == {"before", "after"}
    assert "traced" in result["notes"]
    assert torch.equal(lm.model.get_input_embeddings().weight, frozen)  # not trained
    assert result["training"]["steps"] == 3


def test_a_failing_check_stops_before_any_model_loads(tmp_path, text_file):
    class Refuses(Recipe):
        def check(self, run):
            raise WattlmError("refused")

        def load(self, run):  # pragma: no cover - must not be reached
            raise AssertionError("loaded")

    cfg = FinetuneConfig(model="tiny", data=data_cfg(str(text_file)), options=opts())
    with pytest.raises(WattlmError, match="refused"):
        run_recipe(Refuses(cfg), tmp_path / "run", progress=False)
