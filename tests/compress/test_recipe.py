import pytest
import torch

from wattlm.compress import method_names
from wattlm.compress.recipe import Recipe, apply_recipe, load_recipe
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm


def test_yaml_recipe_loads_and_applies(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: half\nstages:\n  - method: cast\n    dtype: bfloat16\n")
    recipe = load_recipe(path)
    assert recipe.name == "half" and recipe.stages[0].dtype == "bfloat16"
    lm = tiny_causal_lm()
    log = apply_recipe(lm.model, recipe, tokenizer=lm.tokenizer)
    assert [entry["method"] for entry in log] == ["cast"]
    assert lm.model.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages: []\n", "non-empty 'stages'"),
        ("stage:\n  - method: cast\n", "unknown key.*stage.*valid keys"),
        ("stages:\n  - dtype: bfloat16\n", "needs a 'method'"),
        ("stages:\n  - method: shrink-ray\n", "unknown compression method 'shrink-ray'"),
        (
            "stages:\n  - method: cast\n    dtyp: bfloat16\n",
            "stage 1 \\(cast\\): unknown key.*dtyp.*valid keys: dtype, keep",
        ),
        (
            "stages:\n  - method: cast\n  - method: cast\n    dtype: int3\n",
            "stage 2 \\(cast\\): unknown dtype",
        ),
        ("stages: [\n", "not valid YAML"),
    ],
)
def test_invalid_recipes_fail_before_any_work(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(WattlmError, match=message):
        load_recipe(path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(WattlmError, match="recipe not found"):
        load_recipe(tmp_path / "none.yaml")


def test_round_trip_and_method_list():
    recipe = Recipe.from_dict({"name": "x", "stages": [{"method": "cast", "keep": ["lm_head"]}]})
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert "cast" in method_names()


def test_shipped_recipes_are_valid():
    from pathlib import Path

    shipped = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))
    assert len(shipped) >= 5
    for path in shipped:
        recipe = load_recipe(path)
        assert recipe.name == path.stem


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    from wattlm.compress.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(
        "stages:\n  - {method: magnitude-prune, sparsity: 0.3, finetune_lr: 1e-4}\n",
        encoding="utf-8",
    )
    stage = load_recipe(path).stages[0]
    assert stage.finetune_lr == 1e-4
