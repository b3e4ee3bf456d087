"""The shared loop: accumulation, resume, checkpoints, options, energy per step."""

import json

import pytest
import torch
from safetensors.torch import load_file

from wattlm.errors import WattlmError
from wattlm.testing.meters import FakeMeter
from wattlm.testing.tiny import tiny_causal_lm, tiny_classifier
from wattlm.train.config import FinetuneConfig
from wattlm.train.finetuning import finetune

from .conftest import data_cfg, opts


class Interrupt(Exception):
    pass


def _weights(run):
    return load_file(str(run / "model" / "model.safetensors"))


def _lm_config(text_file, **kw):
    return FinetuneConfig(
        model="tiny", data=data_cfg(str(text_file), seq_len=16), options=opts(**kw)
    )


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path, text_file):
    a = finetune(
        _lm_config(text_file, batch_size=4, grad_accum=2, max_steps=2, optimizer="sgd"),
        tmp_path / "a",
        model=tiny_causal_lm(),
        progress=False,
    )
    b = finetune(
        _lm_config(text_file, batch_size=8, grad_accum=1, max_steps=2, optimizer="sgd"),
        tmp_path / "b",
        model=tiny_causal_lm(),
        progress=False,
    )
    assert a["training"]["samples"] == b["training"]["samples"] == 16
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.allclose(wa[name], wb[name], atol=1e-6), name
    finetune(
        _lm_config(text_file, batch_size=4, grad_accum=1, max_steps=2, optimizer="sgd"),
        tmp_path / "c",
        model=tiny_causal_lm(),
        progress=False,
    )
    assert not all(torch.equal(wa[n], _weights(tmp_path / "c")[n]) for n in wa)


def _clf_config(labelled_file, **kw):
    return FinetuneConfig(model="tiny", data=data_cfg(labelled_file), options=opts(**kw))


def test_resume_gives_identical_weights(tmp_path, labelled_file):
    # dropout is on in the tiny BERT: identical weights need the RNG restored too
    full = _clf_config(labelled_file, max_steps=6, checkpoint_every=2)
    finetune(full, tmp_path / "full", model=tiny_classifier(), progress=False)

    def stop_at_3(record):
        if record["step"] == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        finetune(full, tmp_path / "cut", model=tiny_classifier(), progress=False, on_step=stop_at_3)
    assert (tmp_path / "cut" / "checkpoints" / "step-00000002" / "state.pt").is_file()
    assert not (tmp_path / "cut" / "model").exists()
    result = finetune(full, tmp_path / "cut", model=tiny_classifier(), progress=False, resume=True)
    assert result["training"]["resumed_from_step"] == 2
    assert result["training"]["steps"] == 6
    w1, w2 = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for name in w1:
        assert torch.equal(w1[name], w2[name]), name
    steps = [
        json.loads(x)["step"] for x in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert not (tmp_path / "cut" / "checkpoints").exists()  # dropped after success


def test_incompatible_checkpoint_fails_before_training(tmp_path, labelled_file):
    cfg = _clf_config(labelled_file, max_steps=4, checkpoint_every=1)

    def stop(record):
        raise Interrupt

    with pytest.raises(Interrupt):
        finetune(cfg, tmp_path / "run", model=tiny_classifier(), progress=False, on_step=stop)
    log = (tmp_path / "run" / "log.jsonl").read_text()
    other = _clf_config(labelled_file, max_steps=4, checkpoint_every=1, batch_size=8)
    called = []
    with pytest.raises(WattlmError, match="cannot resume.*batch_size: 4 in the checkpoint, 8 now"):
        finetune(
            other,
            tmp_path / "run",
            model=tiny_classifier(),
            progress=False,
            resume=True,
            on_step=called.append,
        )
    assert called == []
    assert (tmp_path / "run" / "log.jsonl").read_text() == log
    with pytest.raises(WattlmError, match="cannot resume.*parameters"):
        finetune(cfg, tmp_path / "run", model=_wider(), progress=False, resume=True)
    with pytest.raises(WattlmError, match="nothing to resume"):
        finetune(cfg, tmp_path / "fresh", model=tiny_classifier(), progress=False, resume=True)


def _wider():
    lm = tiny_classifier()
    lm.model.classifier = torch.nn.Linear(64, 2, bias=False)  # a different parameter set
    return lm


def test_gradient_checkpointing_recomputes_the_forward(tmp_path, labelled_file):
    counts = {}
    for flag in (False, True):
        lm = tiny_classifier()
        calls = []
        lm.model.bert.encoder.layer[0].intermediate.register_forward_hook(
            lambda *a, calls=calls: calls.append(1)
        )
        finetune(
            _clf_config(labelled_file, max_steps=1, gradient_checkpointing=flag),
            tmp_path / str(flag),
            model=lm,
            progress=False,
        )
        counts[flag] = len(calls)
    # the eval passes before/after are the same; checkpointing adds one forward per step
    assert counts[True] == counts[False] + 1


def test_compile_option_compiles_the_model(tmp_path, labelled_file, monkeypatch):
    compiled = []
    monkeypatch.setattr(
        torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__)
    )
    finetune(
        _clf_config(labelled_file, max_steps=1, compile=True),
        tmp_path / "c",
        model=tiny_classifier(),
        progress=False,
    )
    assert compiled == ["BertForSequenceClassification"]


def test_energy_is_measured_per_step_and_labelled(tmp_path, labelled_file):
    meter = FakeMeter(energies_j=[1.0, 2.0, 3.0, 10.0])  # three steps, then the whole run
    result = finetune(
        _clf_config(labelled_file, max_steps=3),
        tmp_path / "e",
        model=tiny_classifier(),
        progress=False,
        meter=meter,
    )
    records = [json.loads(x) for x in (tmp_path / "e" / "log.jsonl").read_text().splitlines()]
    assert [r["energy_j"] for r in records] == [1.0, 2.0, 3.0]
    assert {r["energy_source"] for r in records} == {"fake"}
    for r in records:
        assert r["samples"] == 4 and r["samples_per_s"] > 0 and r["tokens_per_s"] > 0
        assert r["peak_memory_bytes"] > 0 and r["memory_kind"] == "rss"
    t = result["training"]
    assert (t["energy_j"], t["energy_source"], t["energy_scope"]) == (10.0, "fake", "this process")
    assert t["g_co2e"] == pytest.approx(10.0 / 3.6e6 * result["carbon"]["grid_intensity_g_per_kwh"])


def test_max_time_stops_early(tmp_path, labelled_file):
    result = finetune(
        _clf_config(labelled_file, max_steps=50, max_time_s=1e-6),
        tmp_path / "t",
        model=tiny_classifier(),
        progress=False,
    )
    assert result["training"]["steps"] == 1
    assert result["training"]["stopped_by"] == "max_time"


def test_training_lowers_the_loss(tmp_path, text_file):
    result = finetune(
        _lm_config(text_file, max_steps=15, lr=1e-2, schedule="constant", batch_size=8),
        tmp_path / "l",
        model=tiny_causal_lm(),
        progress=False,
    )
    t = result["training"]
    assert t["loss_last"] < 0.8 * t["loss_first"]
    assert result["quality"]["after"]["value"] < result["quality"]["before"]["value"]
