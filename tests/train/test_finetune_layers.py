"""Fine-tuning with frozen layers or LoRA: the right weights change, the saved model loads
without PEFT, and length-bucketed batches train too."""

import pytest
import torch

from wattlm.models.load import load_model, save_model
from wattlm.report.result import load_result
from wattlm.testing.tiny import tiny_classifier
from wattlm.train.config import FinetuneConfig
from wattlm.train.finetuning import finetune

from .conftest import data_cfg, opts


@pytest.fixture
def clf_dir(tmp_path):
    return str(save_model(tiny_classifier(), tmp_path / "tiny-clf"))


def _weights(path):
    model = load_model(path, task="sequence-classification").model
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_lora_run_saves_a_merged_model_with_changed_attention(tmp_path, labelled_file, clf_dir):
    pytest.importorskip("peft")
    cfg = FinetuneConfig(
        model=clf_dir,
        data=data_cfg(labelled_file),
        options=opts(
            max_steps=6, batch_size=8, lr=1e-2, train_layers="lora", lora_rank=4,
            optimizer="adagrad",
        ),
    )  # fmt: skip
    result = finetune(cfg, tmp_path / "run", progress=False)
    written = load_result(tmp_path / "run")  # valid against the schema
    assert written["options"]["train_layers"] == "lora"
    assert written["options"]["optimizer"] == "adagrad"
    assert result["options"]["lora_rank"] == 4
    before, after = _weights(clf_dir), _weights(str(tmp_path / "run" / "model"))
    assert set(before) == set(after)  # no lora_A/lora_B keys: merged before saving
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before[name], after[name])  # the adapter was folded in
    assert torch.equal(
        before["bert.encoder.layer.0.attention.self.key.weight"],
        after["bert.encoder.layer.0.attention.self.key.weight"],
    )  # not adapted, frozen
    assert torch.equal(
        before["bert.embeddings.word_embeddings.weight"],
        after["bert.embeddings.word_embeddings.weight"],
    )


def test_frozen_embeddings_and_bucketed_batches(tmp_path, labelled_file, clf_dir):
    cfg = FinetuneConfig(
        model=clf_dir,
        data=data_cfg(labelled_file),
        options=opts(max_steps=4, batch_size=8, train_layers="freeze-embeddings",
                     length_batching="bucketed"),
    )  # fmt: skip
    finetune(cfg, tmp_path / "run", progress=False)
    before, after = _weights(clf_dir), _weights(str(tmp_path / "run" / "model"))
    emb = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(before[emb], after[emb])
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
