import json

import pytest

from wattlm.bench.config import BenchConfig
from wattlm.compress.pipeline import compress_model
from wattlm.errors import WattlmError
from wattlm.models.load import save_model
from wattlm.testing.tiny import tiny_causal_lm


@pytest.fixture
def tiny_folder(tmp_path):
    return str(save_model(tiny_causal_lm(seed=4), tmp_path / "tiny"))


def _cfg(text_file):
    return BenchConfig(
        data=str(text_file),
        backends=("torch",),
        batch_sizes=(1,),
        prompt_tokens=16,
        new_tokens=4,
        repeats=2,
        warmup=0,
        threads=1,
        ppl_max_length=32,
        ppl_stride=16,
        ppl_max_tokens=128,
    )


def test_compress_writes_model_benches_and_comparison(tiny_folder, text_file, tmp_path):
    recipe = tmp_path / "half.yaml"
    recipe.write_text("name: half\nstages:\n  - method: cast\n    dtype: bfloat16\n")
    out = tmp_path / "run"
    comparison = compress_model(
        tiny_folder, recipe, out, bench_config=_cfg(text_file), progress=False
    )
    for name in (
        "model/model.safetensors",
        "model/wattlm_compression.json",
        "model/recipe.yaml",
        "original/result.json",
        "compressed/result.json",
        "comparison.json",
        "comparison.md",
        "recipe.yaml",
    ):
        assert (out / name).is_file(), name
    weights = comparison["model"]["weight_bytes"]
    assert weights["after"] < 0.55 * weights["before"]
    assert comparison["quality"]["metric"] == "perplexity"
    assert abs(comparison["quality"]["change_pct"]) < 5
    compressed = json.loads((out / "compressed" / "result.json").read_text())
    assert compressed["model"]["dtype"] == "bfloat16"
    assert compressed["model"]["path"].endswith("model")
    assert [f["figure"] for f in comparison["runs"][0]["figures"]][2] == "decode tok/s"
    assert "| decode J/tok |" in (out / "comparison.md").read_text()
    assert not list(tmp_path.glob(".tmp-*"))


def test_bad_recipe_fails_before_any_work(tiny_folder, text_file, tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("stages:\n  - method: cast\n    dtype: int3\n")
    with pytest.raises(WattlmError, match="unknown dtype"):
        compress_model(tiny_folder, recipe, tmp_path / "run", bench_config=_cfg(text_file))
    assert not (tmp_path / "run").exists()


def test_refuses_non_empty_out(tiny_folder, text_file, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - method: cast\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    with pytest.raises(WattlmError, match="not empty"):
        compress_model(tiny_folder, recipe, tmp_path / "run", bench_config=_cfg(text_file))
    assert (tmp_path / "run" / "keep.txt").read_text() == "x"
