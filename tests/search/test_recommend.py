"""Saving the recommended configuration and benching it again from its files."""

import importlib.util
import json
import types

import pytest

from wattlm.report.result import validate_result
from wattlm.search import optimize
from wattlm.search.candidate import Candidate
from wattlm.search.recommend import save_recommended

needs_llamacpp = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None, reason="xllamacpp is not installed"
)


@pytest.fixture
def tiny_gguf(tmp_path):
    from wattlm.export.gguf_writer import export_gguf
    from wattlm.testing.tiny import tiny_causal_lm

    lm = tiny_causal_lm(seed=3, max_positions=512)
    return str(export_gguf(lm.model, lm.tokenizer, tmp_path / "tiny-q8_0.gguf", qtype="q8_0"))


def _record(cand, number=4):
    return {"number": number, "stage": "screen", "result_path": None, "candidate": cand.to_dict()}


@pytest.mark.parametrize(
    "stages",
    [({"method": "int8-weight"},), ({"method": "int4-weight", "group_size": 32},), ()],
    ids=["int8", "int4", "none"],
)
def test_torch_variant_of_a_gguf_model_is_saved_and_reloaded(
    stages, tiny_gguf, text_file, tiny_config, tmp_path
):
    from wattlm.models.load import load_model

    base = load_model(tiny_gguf)  # carries transformers' GGUF quantization marker
    cfg = tiny_config(tiny_gguf, str(text_file), "quick")
    s = types.SimpleNamespace(
        cfg=cfg, base=base, out=tmp_path / "run", baseline_ppl=lambda stage: 300.0
    )
    cand = Candidate("x", {}, stages, "torch", None, 2, 1)
    entry = save_recommended(s, _record(cand))
    assert entry["path"] == "recommended/model"
    result = json.loads((tmp_path / "run" / "recommended" / "result.json").read_text())
    validate_result(result)
    assert result["runs"][0]["batch_size"] == 2
    assert entry["metrics"]["perplexity"] == result["quality"]["value"]
    assert "wattlm bench --model" in entry["command"]
    reloaded = load_model(str(tmp_path / "run" / "recommended" / "model"))
    assert len(reloaded.compression) == len(stages)


@needs_llamacpp
@pytest.mark.slow
def test_search_on_a_gguf_file_measures_the_peer(tiny_gguf, text_file, tiny_config, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(
        "methods: {none: [], int8-weight: [{method: int8-weight}]}\n"
        "backends: {torch: {}, llamacpp: {qtype: [q8_0, q4_0]}}\n"
        "batch_sizes: [1, 2]\nthreads: [1]\n"
        "start: [{method: none, backend: llamacpp, qtype: q4_0, batch_size: 2}]\n"
    )
    cfg = tiny_config(tiny_gguf, str(text_file), str(space), n_trials=4, remeasure=2)
    record = optimize(cfg, out_dir=tmp_path / "run", progress=False)
    validate_result(record)
    peer = record["peer"]
    assert peer["label"] == "llama.cpp default (Q8_0 file, batch 1)"
    assert peer["state"] == "complete", peer["error"]
    assert peer["metrics"]["perplexity"] == record["trials"][0]["metrics"]["perplexity"]
    assert record["ratios"]["tokens_per_joule_vs_peer"] > 0
    assert (tmp_path / "run" / record["recommended_model"]["result_path"]).is_file()
    chosen = record["recommended_model"]
    saved = json.loads((tmp_path / "run" / chosen["result_path"]).read_text())
    copied = any(n.startswith("not benched again") for n in saved["notes"])
    assert copied == (chosen["backend"] == "llamacpp")  # the GGUF is the file measured


def test_a_gguf_copied_byte_for_byte_is_not_benched_again(tmp_path):
    from wattlm.search.recommend import _measured_file

    ran = tmp_path / "trials" / "3" / "model.gguf"
    ran.parent.mkdir(parents=True)
    ran.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    result = tmp_path / "trials" / "3" / "full" / "result.json"
    result.parent.mkdir()
    result.write_text(json.dumps({"model": {"path": str(ran)}}))
    target = tmp_path / "recommended" / "model.gguf"
    target.parent.mkdir()
    target.write_bytes(ran.read_bytes())
    rec = {"number": 3, "stage": "full", "result_path": str(result)}

    digest = _measured_file(rec, target)
    assert digest is not None and len(digest) == 64
    assert _measured_file({**rec, "stage": "screen"}, target) is None  # no full-stage bench
    target.write_bytes(ran.read_bytes()[:-1] + b"\x00")  # one byte differs: bench again
    assert _measured_file(rec, target) is None
