"""Prune and heal in the search: payback arithmetic, the amortised decision, the heal cache."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from wattlm.errors import WattlmError
from wattlm.report.heal_payback import NO_SAVING_NOTE, amortised, payback_tokens
from wattlm.report.result import validate_result
from wattlm.search import heal_cache, optimize
from wattlm.search.config import OptimizeConfig
from wattlm.search.quality_budget import QualityBudget
from wattlm.search.record import _choices, add_paybacks
from wattlm.search.synthetic import SyntheticEvaluator

needs_llamacpp = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None, reason="xllamacpp is not installed"
)

# int4 alone: 0.25 J/token (synthetic); pruned + healed + int4: 0.85 x 0.25 = 0.2125 J/token,
# within the 2% budget only because heal recovers 3%; healing 50 steps costs 5 J
HEAL_SPACE = """
methods:
  int4-weight: [{method: int4-weight, group_size: 32}]
  prune-ffn+heal+int4:
    stages:
      - {method: prune-ffn, ratio: 0.1}
      - {method: heal, steps: 50}
      - {method: int4-weight, group_size: 32}
backends: {torch: {}}
batch_sizes: [1]
threads: [1]
"""


def _stat(median, half=0.0):
    return {"median": median, "ci95": [median - half, median + half] if half else None}


def test_payback_is_heal_energy_over_the_saving_per_token():
    # 12 J of healing, 0.5 -> 0.25 J/token: repaid after 12 / 0.25 = 48 served tokens
    assert payback_tokens(12.0, 0.5, 0.25) == 48.0
    assert payback_tokens(12.0, 0.25, 0.5) is None  # costs more per token: never repaid
    assert payback_tokens(12.0, 0.25, 0.25) is None
    # the amortised objective moves median and interval by the same 12 J / 96 tokens
    assert amortised(_stat(0.25, 0.125), {"energy_j": 12.0}, 96) == (0.375, (0.25, 0.5))
    assert amortised(_stat(0.25, 0.125), None, 96) == (0.25, (0.125, 0.375))


def test_add_paybacks_fills_both_stages_and_says_why_a_payback_is_null():
    base = {"stage": "full", "metrics": {"objective": _stat(0.5)},
            "screen_metrics": {"objective": _stat(0.75)}}  # fmt: skip
    saves = {"stage": "full", "metrics": {"objective": _stat(0.25)},
             "screen_metrics": {"objective": _stat(0.5)}, "heal": {"energy_j": 20.0}}  # fmt: skip
    costs = {"stage": "screen", "metrics": {"objective": _stat(1.0)},
             "screen_metrics": {"objective": _stat(1.0)}, "heal": {"energy_j": 20.0}}  # fmt: skip
    plain = {"stage": "screen", "metrics": {"objective": _stat(0.1)}, "screen_metrics": None}
    notes = add_paybacks([base, saves, costs, plain], serving_tokens=80)
    assert saves["heal"]["payback_tokens"] == 80.0  # 20 J / (0.5 - 0.25) J/token
    assert saves["heal"]["screen_payback_tokens"] == 80.0  # 20 J / (0.75 - 0.5)
    assert saves["heal"]["amortised_objective"] == 0.5  # 0.25 + 20 J / 80 tokens
    assert "note" not in saves["heal"]
    assert costs["heal"]["payback_tokens"] is None and costs["heal"]["note"] == NO_SAVING_NOTE
    assert "heal" not in plain
    assert len(notes) == 1 and "80 served tokens" in notes[0]


def test_choices_compare_amortised_objectives():
    budget = QualityBudget(0.02)
    common = {"stage": "full", "feasible": True, "duplicate_of": None, "state": "complete"}
    plain = {**common, "number": 1, "metrics": {"objective": _stat(0.25, 0.01),
             "perplexity": 10.0, "weight_bytes": 1}}  # fmt: skip
    healed = {**common, "number": 2, "metrics": {"objective": _stat(0.125, 0.01),
              "perplexity": 10.0, "weight_bytes": 1}, "heal": {"energy_j": 100.0}}  # fmt: skip
    few = {c.number: c for c in _choices([plain, healed], "full", budget, serving_tokens=100)}
    assert few[1].objective == 0.25 and few[1].interval == (0.24, 0.26)
    assert few[2].objective == 1.125 and few[2].interval == pytest.approx((1.115, 1.135))
    many = {c.number: c for c in _choices([plain, healed], "full", budget, 10**6)}
    assert many[2].objective == pytest.approx(0.125 + 1e-4)


@pytest.mark.parametrize(("serving_tokens", "winner"), [(10, "int4-weight"), (10**7, "heal")])
def test_the_recommendation_flips_with_the_serving_volume(
    serving_tokens, winner, synthetic_config, tmp_path
):
    space = tmp_path / "heal.yaml"
    space.write_text(HEAL_SPACE)
    cfg = synthetic_config(
        str(space), sampler="grid", n_trials=2, remeasure=2, serving_tokens=serving_tokens
    )
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=SyntheticEvaluator(), progress=False)
    validate_result(record)
    assert record["serving_tokens"] == serving_tokens
    trials = {t["number"]: t for t in record["trials"]}
    healed = next(t for t in trials.values() if t.get("heal"))
    plain = next(t for t in trials.values() if t["label"].startswith("int4-weight"))
    assert healed["stage"] == plain["stage"] == "full" and healed["feasible"]
    # the healed trial is cheaper per token; 5 J of healing is paid back after
    # 5 / (baseline - healed) tokens, against the baseline's own figure at that stage
    assert healed["metrics"]["objective"]["median"] < plain["metrics"]["objective"]["median"]
    base = trials[0]["metrics"]["objective"]["median"]
    heal = healed["heal"]
    assert heal["energy_j"] == 5.0 and heal["steps"] == 50 and heal["energy_source"] == "fake"
    saving = base - healed["metrics"]["objective"]["median"]
    assert heal["payback_tokens"] == pytest.approx(5.0 / saving)
    assert heal["amortised_objective"] == pytest.approx(
        healed["metrics"]["objective"]["median"] + 5.0 / serving_tokens
    )
    chosen = trials[record["recommended"]]
    assert ("heal" in chosen) == (winner == "heal"), chosen["label"]
    assert any("amortised energy per token" in n for n in record["notes"])
    saved = json.loads((tmp_path / "run" / "optimize.json").read_text())
    assert saved["serving_tokens"] == serving_tokens
    report = (tmp_path / "run" / "report.md").read_text()
    assert "healing (J; payback; amortised" in report and "5 J; paid back after" in report
    assert "healing (J" in (tmp_path / "run" / "report.html").read_text()


def test_serving_tokens_is_validated_and_not_part_of_the_study_identity():
    assert OptimizeConfig().serving_tokens == 10_000_000
    for bad in (0, -1, 1.5, True, "many"):
        with pytest.raises(WattlmError, match="serving tokens must be a positive whole number"):
            OptimizeConfig(serving_tokens=bad)
    a, b = OptimizeConfig(serving_tokens=10), OptimizeConfig(serving_tokens=10**9)
    assert a.study_fingerprint({}) == b.study_fingerprint({})
    assert OptimizeConfig.from_dict(a.to_dict()) == a


# -- the heal cache -----------------------------------------------------------------------
HEAL = {"method": "heal", "steps": 2, "batch_size": 2, "samples": 2, "seq_len": 16,
        "meter": "estimate"}  # fmt: skip
PRUNE = {"method": "prune-ffn", "ratio": 0.5, "importance": "l2"}


@pytest.fixture
def counted(monkeypatch):
    """Every stage method applied through the search, in order."""
    from wattlm.search import evaluate

    applied: list[str] = []
    real = evaluate.apply_stages

    def apply_stages(model, stages, **kw):
        applied.extend(s["method"] for s in stages)
        return real(model, stages, **kw)

    monkeypatch.setattr(evaluate, "apply_stages", apply_stages)
    return applied


def test_healed_weights_are_computed_once_and_charged_to_every_trial(counted, text_file, tmp_path):
    from wattlm.testing.tiny import tiny_causal_lm

    lm = tiny_causal_lm()
    kw = dict(tokenizer=lm.tokenizer, data=str(text_file), cache_dir=tmp_path / "cache")
    first, log1, heal1 = heal_cache.compress_copy(lm.model, [PRUNE, HEAL], **kw)
    second, log2, heal2 = heal_cache.compress_copy(
        lm.model, [PRUNE, HEAL, {"method": "int8-weight"}], **kw
    )
    # the second rebuilds the pruned shapes (cheap, deterministic) and loads the healed
    # weights over them: no second heal
    assert counted == ["prune-ffn", "heal", "prune-ffn", "int8-weight"]
    assert heal1["energy_j"] > 0 and heal1["energy_source"].startswith("estimate:")
    assert heal1["cached"] is False and heal2["cached"] is True
    assert {k: heal2[k] for k in ("energy_j", "steps", "time_s")} == {
        k: heal1[k] for k in ("energy_j", "steps", "time_s")
    }
    assert [e["method"] for e in log2] == ["prune-ffn", "heal", "int8-weight"]
    assert log2[1]["energy_j"] == log1[1]["energy_j"]
    # the cached model is the healed one (pruned shapes, healed values), not the baseline
    assert first.model.layers[0].mlp.gate_proj.weight.shape[0] == 64  # pruned from 128
    assert second.model.layers[0].mlp.gate_proj.out_features == 64  # then int8-quantized
    third, _, _ = heal_cache.compress_copy(lm.model, [PRUNE, HEAL], **kw)
    healed, again = first.state_dict(), third.state_dict()
    assert healed.keys() == again.keys()
    assert all(torch.equal(healed[k], again[k]) for k in healed)
    assert counted.count("heal") == 1  # the third came from the cache too
    moved = lm.model.model.layers[0].self_attn.q_proj.weight  # not pruned, but healed
    assert not torch.equal(moved, third.model.layers[0].self_attn.q_proj.weight)
    assert type(lm.model.model.layers[0].mlp.up_proj) is torch.nn.Linear
    assert lm.model.model.layers[0].mlp.up_proj.weight.shape[0] == 128  # baseline untouched
    files = sorted(p.name for p in (tmp_path / "cache" / "heal").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors")
    assert (
        heal_cache.cached_entry(tmp_path / "cache", [PRUNE, HEAL])["energy_j"] == heal1["energy_j"]
    )


def test_a_half_written_cache_is_not_read(counted, text_file, tmp_path):
    from wattlm.testing.tiny import tiny_causal_lm

    lm = tiny_causal_lm()
    path = heal_cache.cache_path(tmp_path / "cache", [PRUNE, HEAL])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a model")  # a kill before the .json was written
    kw = dict(tokenizer=lm.tokenizer, data=str(text_file), cache_dir=tmp_path / "cache")
    _, _, heal = heal_cache.compress_copy(lm.model, [PRUNE, HEAL], **kw)
    assert counted == ["prune-ffn", "heal"] and heal["cached"] is False
    assert heal_cache.cached_entry(tmp_path / "cache", [PRUNE, HEAL]) is not None
    # a damaged weights file beside its .json: healed again, not an error
    path.write_bytes(b"not safetensors")
    _, _, heal = heal_cache.compress_copy(lm.model, [PRUNE, HEAL], **kw)
    assert heal["cached"] is False and counted.count("heal") == 2


def test_without_heal_or_without_a_cache_folder_nothing_is_cached(counted, text_file, tmp_path):
    from wattlm.testing.tiny import tiny_causal_lm

    lm = tiny_causal_lm()
    kw = dict(tokenizer=lm.tokenizer, data=str(text_file))
    _, _, heal = heal_cache.compress_copy(lm.model, [PRUNE], cache_dir=tmp_path / "c", **kw)
    assert heal is None and not (tmp_path / "c").exists()
    _, _, heal = heal_cache.compress_copy(lm.model, [PRUNE, HEAL], cache_dir=None, **kw)
    _, _, heal = heal_cache.compress_copy(lm.model, [PRUNE, HEAL], cache_dir=None, **kw)
    assert counted == ["prune-ffn", "prune-ffn", "heal", "prune-ffn", "heal"]
    assert "cached" not in heal and heal["energy_j"] > 0


@needs_llamacpp
def test_pruned_and_healed_weights_export_to_several_gguf_types_healed_once(
    counted, tiny_model_dir, text_file, tmp_path
):
    from wattlm.models.load import load_model
    from wattlm.search.candidate import Candidate
    from wattlm.search.config import StageSettings
    from wattlm.search.evaluate import BenchEvaluator, TrialSpec, register_base_model

    base = load_model(tiny_model_dir)
    register_base_model(tiny_model_dir, "cpu", base)
    settings = StageSettings(
        prompt_tokens=16, new_tokens=4, warmup=0, repeats=2, ppl_max_tokens=200
    )
    stages = (PRUNE, HEAL, {"method": "int4-weight", "group_size": 32})
    outs = []
    for number, qtype in ((1, "q8_0"), (2, "q4_0")):
        cand = Candidate("prune-ffn+heal+int4", {}, stages, "llamacpp", qtype, 1, 1)
        spec = TrialSpec(
            number, cand, "screen", settings, "decode-energy", tiny_model_dir, str(text_file),
            meter="estimate", ppl_max_length=64, ppl_stride=32,
            out_dir=str(tmp_path / f"trial-{number}"), cache_dir=str(tmp_path / "cache"),
        )  # fmt: skip
        outs.append(BenchEvaluator()(spec))
    assert [o["error"] for o in outs] == [None, None]
    # int4-weight dropped (llama.cpp quantizes); the second trial rebuilds the pruned
    # shapes and loads the healed weights: healed once
    assert counted == ["prune-ffn", "heal", "prune-ffn"]
    assert outs[0]["heal"]["cached"] is False and outs[1]["heal"]["cached"] is True
    assert outs[0]["heal"]["energy_j"] == outs[1]["heal"]["energy_j"] > 0
    sizes = [(tmp_path / f"trial-{n}" / "model.gguf").stat().st_size for n in (1, 2)]
    assert sizes[1] < sizes[0]  # two exports of the same healed weights


def test_the_recommended_model_is_saved_from_the_healed_weights_not_healed_again(
    counted, tiny_model_dir, text_file, tiny_config, tmp_path
):
    import types

    from wattlm.models.load import load_model
    from wattlm.search.candidate import Candidate
    from wattlm.search.recommend import save_recommended

    base = load_model(tiny_model_dir)
    out = tmp_path / "run"
    kw = dict(tokenizer=base.tokenizer, data=str(text_file), cache_dir=out / "cache")
    healed, _, _ = heal_cache.compress_copy(base.model, [PRUNE, HEAL], **kw)  # a trial's build
    cfg = tiny_config(tiny_model_dir, str(text_file), "quick")
    s = types.SimpleNamespace(cfg=cfg, base=base, out=out, baseline_ppl=lambda stage: 300.0)
    stages = (PRUNE, HEAL, {"method": "int8-weight"})
    cand = Candidate("prune-ffn+heal+int8", {}, stages, "torch", None, 1, 1)
    record = {"number": 4, "stage": "screen", "result_path": None, "candidate": cand.to_dict()}
    save_recommended(s, record)
    assert counted.count("heal") == 1 and counted[-1] == "int8-weight"  # not healed again
    reloaded = load_model(str(out / "recommended" / "model"))
    assert [e["method"] for e in reloaded.compression] == ["prune-ffn", "heal", "int8-weight"]
    assert reloaded.model.model.layers[0].mlp.gate_proj.out_features == 64
    kept = healed.model.layers[0].self_attn.o_proj.weight  # healed, then int8: close to it
    again = reloaded.model.model.layers[0].self_attn.o_proj
    assert torch.allclose(again.dequantize(), kept, atol=0.02)
    assert not torch.allclose(base.model.model.layers[0].self_attn.o_proj.weight, kept)


def test_a_report_without_healed_trials_has_no_healing_column():
    from wattlm.report.optimize_view import OptimizeView
    from wattlm.testing.optimize_record import sample_optimize_record

    view = OptimizeView(sample_optimize_record())
    assert "heal" not in view.shown(["energy", "heal"])
    healed = sample_optimize_record()
    healed["trials"][1]["heal"] = {"energy_j": 3.0, "payback_tokens": None}
    assert OptimizeView(healed).shown(["energy", "heal"]) == ["energy", "heal"]
    assert (
        OptimizeView(healed)
        .trial_cells(healed["trials"][1])["heal"]
        .startswith("3 J; never paid back")
    )
