"""Backend runtime settings (llama.cpp's flash attention, KV cache…) as search dimensions."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.search.candidate import Candidate
from wattlm.search.space import SearchSpace, load_space

SPACE = {
    "methods": {"none": []},
    "backends": {
        "torch": {},
        "llamacpp": {"qtype": ["q8_0"], "flash_attn": ["auto", "off"], "kv_cache": ["f16", "q8_0"]},
    },
    "batch_sizes": [8],
    "threads": [1],
}


def test_candidate_round_trip_key_and_label():
    c = Candidate("none", {}, (), "llamacpp", "q8_0", 8, 2, {"flash_attn": True, "n_batch": 2048})
    assert c.runtime == {"flash_attn": "on"}  # canonical; the default n_batch dropped
    assert Candidate.from_dict(c.to_dict()) == c
    assert c.label() == "none → llama.cpp q8_0 flash_attn=on · batch 8 · 2 threads"
    assert c.params()["flash_attn"] == "on" and "n_batch" not in c.params()
    plain = Candidate("none", {}, (), "llamacpp", "q8_0", 8, 2)
    assert c.key() != plain.key()
    # a record written before runtime settings existed loads as the defaults
    old = {k: v for k, v in plain.to_dict().items() if k != "runtime"}
    assert Candidate.from_dict(old) == plain
    assert plain.key() == '[[],"llamacpp","q8_0",8,2]'  # the key old records have


def test_candidate_refuses_unknown_settings_and_reports_clashes():
    with pytest.raises(WattlmError, match="unknown runtime setting"):
        Candidate("none", {}, (), "torch", None, 1, 1, {"flash_attn": "on"})
    clash = Candidate(
        "none", {}, (), "llamacpp", "q4_0", 1, 1, {"kv_cache": "q8_0", "flash_attn": "off"}
    )
    assert "needs flash attention" in clash.incompatible()


def test_space_reads_runtime_settings():
    space = SearchSpace.from_dict(SPACE)
    assert SearchSpace.from_dict(space.to_dict()) == space
    labels = [c.label() for c in space.candidates()]
    # 2 x 2 llama.cpp settings minus the clash (q8_0 KV without flash attention), plus torch
    assert len(labels) == 4
    assert "none → llama.cpp q8_0 flash_attn=off · batch 8 · 1 thread" in labels
    assert not any("flash_attn=off kv_cache=q8_0" in label for label in labels)
    assert all(
        "runtime" not in c.to_dict() or not c.runtime
        for c in space.candidates()
        if c.backend == "torch"
    )


def test_space_suggests_runtime_settings_as_optuna_parameters():
    optuna = pytest.importorskip("optuna")
    space = SearchSpace.from_dict(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        c = space.suggest(trial)
        if c.backend == "llamacpp":
            assert trial.params["llamacpp.flash_attn"] == c.runtime.get("flash_attn", "auto")
            seen.add(trial.params["llamacpp.kv_cache"])
        else:
            assert "llamacpp.flash_attn" not in trial.params
        study.tell(trial, 1.0)
    assert seen == {"f16", "q8_0"}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"flash_attn": ["on", "maybe"]}, "flash_attn='maybe' is not a valid setting"),
        ({"n_batch": [0]}, "n_batch must be an integer >= 1, got 0"),
        ({"speculative": ["off", "off"]}, "lists a value twice"),
    ],
)
def test_bad_runtime_values_fail_in_one_line(setting, message):
    data = {**SPACE, "backends": {"llamacpp": setting}}
    with pytest.raises(WattlmError, match=message) as err:
        SearchSpace.from_dict(data)
    assert "\n" not in str(err.value)
    with pytest.raises(WattlmError, match="unknown key"):
        SearchSpace.from_dict({**SPACE, "backends": {"torch": {"flash_attn": ["on"]}}})


def test_start_point_with_runtime_settings():
    data = {
        **SPACE,
        "start": [
            {
                "method": "none",
                "backend": "llamacpp",
                "qtype": "q8_0",
                "flash_attn": "off",
                "batch_size": 8,
                "threads": 1,
            }
        ],
    }
    space = SearchSpace.from_dict(data)
    assert space.start_params()[0]["llamacpp.flash_attn"] == "off"
    assert space.start_candidates()[0].runtime == {"flash_attn": "off"}
    data["start"][0]["backend"] = "torch"
    data["start"][0].pop("qtype")
    with pytest.raises(WattlmError, match="runtime setting the space varies for llamacpp"):
        SearchSpace.from_dict(data)


def test_shipped_full_space_varies_llama_cpp_settings():
    space = load_space("full")
    settings = dict(dict(space.runtime)["llamacpp"])
    assert settings["speculative"] == ("off", "ngram-mod", "ngram-simple")
    assert (settings["spec_ngram"], settings["spec_draft"]) == ((3,), (8,))
    assert settings["flash_attn"] == ("auto", "on")
    assert not load_space("default").runtime


def test_draft_sizes_without_a_drafter_are_the_plain_run():
    sized = Candidate("none", {}, (), "llamacpp", "q8_0", 8, 1, {"spec_ngram": 3})
    assert sized == Candidate("none", {}, (), "llamacpp", "q8_0", 8, 1)


def test_a_quality_changing_setting_is_part_of_the_weights_key():
    plain = Candidate("none", {}, (), "llamacpp", "q8_0", 8, 2)
    flash = Candidate("none", {}, (), "llamacpp", "q8_0", 8, 2, runtime={"flash_attn": "on"})
    kv = Candidate("none", {}, (), "llamacpp", "q8_0", 8, 2, runtime={"kv_cache": "q8_0"})
    assert flash.weights_key() == plain.weights_key()  # same computation: perplexity reused
    assert kv.weights_key() != plain.weights_key()  # a 8-bit KV cache: scored on its own


def test_speculative_acceptance_reaches_the_trial_metrics():
    from wattlm.search.metrics import metrics_from_result
    from wattlm.search.progress import describe
    from wattlm.testing.results import sample_bench_result

    r = sample_bench_result()
    r["runs"] = r["runs"][:1]
    plain = metrics_from_result(r, objective="decode-energy", weight_bytes=1)
    assert plain["speculative_acceptance"] is None
    r["runs"][0]["backend_details"]["speculative"] = {
        "type": "ngram-simple", "drafted_tokens": 28, "accepted_tokens": 20,
        "acceptance_rate": 20 / 28,
    }  # fmt: skip
    m = metrics_from_result(r, objective="decode-energy", weight_bytes=1)
    assert m["speculative_acceptance"] == pytest.approx(20 / 28)
    rec = {"number": 3, "label": "x", "state": "complete", "feasible": True, "metrics": m}
    assert "71% of drafts accepted" in describe(rec, "J/token")
