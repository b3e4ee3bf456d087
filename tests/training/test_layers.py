"""Which layers train (frozen, LoRA), length-bucketed batches, Adagrad."""

import pytest
import torch

from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_classifier
from wattlm.training.data import bucket_plan, step_plan
from wattlm.training.layers import apply_train_layers, merge_lora
from wattlm.training.optim import build_optimizer
from wattlm.training.options import TrainOptions


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_freeze_embeddings_and_lower_half():
    model = tiny_classifier().model
    apply_train_layers(model, "freeze-embeddings")
    names = _trainable(model)
    assert not any(n.startswith("bert.embeddings.") for n in names)
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    assert "classifier.weight" in names

    model = tiny_classifier().model
    info = apply_train_layers(model, "freeze-lower")
    names = _trainable(model)
    assert not any(n.startswith("bert.encoder.layer.0.") for n in names)  # 2 layers: 1 frozen
    assert any(n.startswith("bert.encoder.layer.1.") for n in names)
    assert info["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_lora_trains_adapters_and_head_and_merges_back():
    pytest.importorskip("peft")
    model = tiny_classifier().model.eval()
    x = torch.randint(3, 300, (2, 8))
    plain = model(input_ids=x).logits
    apply_train_layers(model, "lora", lora_rank=4)
    names = _trainable(model)
    assert names and all("lora_" in n or n.startswith("classifier.") for n in names)
    assert torch.allclose(model(input_ids=x).logits, plain, atol=1e-6)  # B starts at zero
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.05)
    adapted = model(input_ids=x).logits
    assert not torch.allclose(adapted, plain, atol=1e-4)
    assert merge_lora(model) == 4  # query and value of 2 layers
    assert not any("lora_" in n for n, _ in model.named_parameters())
    assert torch.allclose(model(input_ids=x).logits, adapted, atol=1e-5)


def test_lora_on_a_model_without_attention_projections_is_refused():
    pytest.importorskip("peft")
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(WattlmError, match="no module LoRA can adapt") as err:
        apply_train_layers(model, "lora")
    assert "attention projections" in err.value.hint


def test_bucketed_plan_keeps_every_sample_and_cuts_padding():
    lengths = [(i * 37) % 100 + 1 for i in range(256)]
    plan = step_plan(256, batch_size=8, grad_accum=2, epoch=0, seed=3)
    bucketed = bucket_plan(plan, lengths, seed=3, epoch=0)
    flat = sorted(i for step in bucketed for mb in step for i in mb)
    assert flat == sorted(i for step in plan for mb in step for i in mb)
    assert [len(s) for s in bucketed] == [len(s) for s in plan]

    def padding(p):
        return sum(
            max(lengths[i] for i in mb) * len(mb) - sum(lengths[i] for i in mb)
            for step in p
            for mb in step
        )

    assert padding(bucketed) < padding(plan) / 4
    assert bucket_plan(plan, lengths, seed=3, epoch=0) == bucketed  # deterministic


def test_adagrad_is_an_optimizer():
    opt = build_optimizer(
        torch.nn.Linear(2, 2).named_parameters(), TrainOptions(optimizer="adagrad")
    )
    assert isinstance(opt, torch.optim.Adagrad)
    with pytest.raises(WattlmError, match="unknown train_layers"):
        TrainOptions(train_layers="some")
