"""The real embedded SmolLM2-135M and Wikipedia sample, end to end (marked ``assets``)."""

from __future__ import annotations

import pytest
import torch

from wattlm.assets import is_cached
from wattlm.bench.config import BenchConfig
from wattlm.bench.quality import perplexity
from wattlm.bench.runner import bench
from wattlm.data.text import load_text
from wattlm.models.fingerprint import state_dict_sha256
from wattlm.models.load import load_model, save_model
from wattlm.report.result import validate_result

pytestmark = [pytest.mark.assets, pytest.mark.slow]


@pytest.fixture(scope="module")
def smollm2():
    for name in ("smollm2-135m", "wiki-sample"):
        if not is_cached(name):
            pytest.skip(f"asset {name} not fetched: run `wattlm assets fetch {name}`")
    return load_model("smollm2-135m")


def test_loads_as_llama_with_expected_size(smollm2):
    info = smollm2.describe()
    assert info["architecture"] == "LlamaForCausalLM"
    assert info["format"] == "gguf"
    assert info["parameters"] == 134_515_008
    assert info["disk_bytes"] == 98_362_432
    assert smollm2.context_length == 8192


def test_perplexity_in_a_sane_band(smollm2):
    ids = smollm2.tokenizer(load_text("wiki-sample", split="test")).input_ids[:2048]
    ppl = perplexity(smollm2.model, ids, max_length=512, stride=256)
    # A 135M model on encyclopedic prose: far better than uniform (49152), far from perfect.
    assert 8 < ppl.value < 40, ppl
    assert ppl.tokens == 2047


def test_short_bench_result_is_valid_and_labelled(smollm2, tmp_path):
    cfg = BenchConfig(
        backends=("torch",),
        batch_sizes=(1, 2),
        prompt_tokens=32,
        new_tokens=8,
        repeats=2,
        warmup=1,
        ppl_max_tokens=600,
        threads=2,
    )
    result = bench(cfg, model=smollm2, out_dir=tmp_path / "run", progress=False)
    validate_result(result)
    assert (tmp_path / "run" / "config.json").is_file()
    for run in result["runs"]:
        assert run["energy_source"].startswith("estimate:")
        assert run["decode"]["energy_j_per_token"]["median"] > 0
        assert run["decode"]["tokens_per_s"]["median"] > 0
    assert result["context"]["threads"]
    assert any("GGUF" in n for n in result["notes"])


def test_gguf_loaded_model_saves_and_reloads(smollm2, tmp_path):
    out = save_model(smollm2, tmp_path / "smol")
    back = load_model(str(out))
    assert back.format == "hf"
    assert state_dict_sha256(back.model) == state_dict_sha256(smollm2.model)
    ids = torch.tensor([smollm2.tokenizer("The capital of France is").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(back.model(ids).logits, smollm2.model(ids).logits)
