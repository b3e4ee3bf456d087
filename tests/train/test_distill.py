"""Distillation end to end on tiny models: the student moves toward its teacher."""

import json

import pytest
import torch

from wattlm.errors import WattlmError
from wattlm.models.load import load_model
from wattlm.report.result import validate_result
from wattlm.testing.tiny import tiny_causal_lm
from wattlm.train.config import DistillConfig
from wattlm.train.distillation import distill
from wattlm.train.student import build_student
from wattlm.training.losses import kd_loss

from .conftest import data_cfg, opts, toy_rows
from .test_student import _bert


def _divergence(teacher, student, enc):
    with torch.no_grad():
        return float(kd_loss(student(**enc).logits, teacher(**enc).logits, 1.0))


def _confident_bert():
    teacher = _bert(4)
    with torch.no_grad():  # confident soft targets that differ between inputs
        teacher.model.classifier.weight.mul_(200.0)
    return teacher


def test_classifier_student_learns_from_teacher(tmp_path, labelled_file):
    teacher = _confident_bert()
    spec = tmp_path / "student.json"  # random init, no dropout: far from the teacher at first
    spec.write_text(
        json.dumps(
            {
                "num_hidden_layers": 2,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
            }
        )
    )
    cfg = DistillConfig(
        teacher="bert",
        student=f"config:{spec}",
        data=data_cfg(labelled_file),
        options=opts(max_steps=25, batch_size=8, lr=3e-3, schedule="constant"),
        alpha=1.0,
    )
    enc = teacher.tokenizer([r["text"] for r in toy_rows(32)], return_tensors="pt", padding=True)
    start = build_student(teacher, cfg.student, seed=cfg.options.seed).loaded.model.eval()
    before = _divergence(teacher.model, start, enc)
    result = distill(cfg, tmp_path / "run", teacher=teacher, progress=False)
    validate_result(result)
    trained = load_model(str(tmp_path / "run" / "model"), task="sequence-classification").model
    assert _divergence(teacher.model, trained, enc) < 0.2 * before
    q = result["quality"]
    assert {q["teacher"]["metric"], q["before"]["metric"], q["after"]["metric"]} == {"accuracy"}
    assert result["teacher"]["parameters"] == result["student"]["teacher_parameters"]
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"kd", "ce"} <= set(records[0])


def test_layer_student_of_a_classifier(tmp_path, labelled_file):
    cfg = DistillConfig(
        teacher="bert",
        student="layers:0,3",
        data=data_cfg(labelled_file),
        options=opts(max_steps=2),
    )
    result = distill(cfg, tmp_path / "run", teacher=_confident_bert(), progress=False)
    assert result["student"]["layer_map"] == [0, 3]
    assert result["student"]["kept_layers"] == [0, 3]
    assert result["student"]["parameters"] < result["student"]["teacher_parameters"]
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["num_hidden_layers"] == 2


def test_causal_lm_distillation_with_hidden_states_and_projection(tmp_path, text_file):
    teacher = tiny_causal_lm(layers=4)
    spec = tmp_path / "narrow.json"
    spec.write_text(
        json.dumps({"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2})
    )
    cfg = DistillConfig(
        teacher="tiny",
        student=f"config:{spec}",
        data=data_cfg(str(text_file), seq_len=16),
        options=opts(max_steps=3),
        hidden_weight=0.5,
    )
    result = distill(cfg, tmp_path / "run", teacher=teacher, progress=False)
    assert result["quality"]["after"]["metric"] == "perplexity"
    assert result["student"]["layer_map"] == [1, 3]
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(r["hidden"] > 0 for r in records)
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["hidden_size"] == 32


def test_vocabulary_mismatch_fails_before_training(tmp_path, text_file):
    other = tiny_causal_lm()
    other.tokenizer.add_tokens(["<only-in-the-student>"])
    cfg = DistillConfig(
        teacher="tiny", student="a-model", data=data_cfg(str(text_file)), options=opts()
    )
    with pytest.raises(WattlmError, match="vocabulary mismatch"):
        distill(cfg, tmp_path / "run", teacher=tiny_causal_lm(), student=other, progress=False)
    assert not (tmp_path / "run").exists()


def test_classification_teacher_needs_a_trained_head(tmp_path, labelled_file):
    enc = tmp_path / "encoder"
    enc.mkdir()
    (enc / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "model_type": "bert"})
    )
    cfg = DistillConfig(teacher=str(enc), data=data_cfg(labelled_file), options=opts())
    with pytest.raises(WattlmError, match="no trained classification head"):
        distill(cfg, tmp_path / "run", progress=False)
