"""Distillation losses against values computed by hand."""

import math

import pytest
import torch

from wattlm.training.losses import hard_loss, hidden_loss, kd_loss


def _softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


def test_kd_loss_equals_hand_computed_value():
    s, t, temp = [1.0, 2.0, 3.0], [3.0, 1.0, 0.5], 2.0
    ps = _softmax([x / temp for x in s])
    pt = _softmax([x / temp for x in t])
    kl = sum(p * math.log(p / q) for p, q in zip(pt, ps, strict=True))
    expected = kl * temp**2
    got = kd_loss(torch.tensor([s]), torch.tensor([t]), temp)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(1.81455, abs=1e-4)  # the hand figure itself


def test_kd_loss_averages_positions_and_respects_the_mask():
    s = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    t = torch.tensor([[[3.0, 1.0, 0.5], [5.0, -5.0, 0.0]]])
    first = kd_loss(s[:, :1], t[:, :1], 2.0)
    second = kd_loss(s[:, 1:], t[:, 1:], 2.0)
    assert float(kd_loss(s, t, 2.0)) == pytest.approx(float(first + second) / 2, rel=1e-6)
    masked = kd_loss(s, t, 2.0, mask=torch.tensor([[1, 0]]))
    assert float(masked) == pytest.approx(float(first), rel=1e-6)


def test_hard_loss_shifts_for_causal_lm():
    logits = torch.randn(1, 4, 5)
    labels = torch.tensor([[0, 1, 2, 3]])
    want = torch.nn.functional.cross_entropy(logits[0, :3], labels[0, 1:])
    assert torch.allclose(hard_loss(logits, labels, causal=True), want)
    cls = torch.randn(3, 2)
    y = torch.tensor([0, 1, 1])
    assert torch.allclose(
        hard_loss(cls, y, causal=False), torch.nn.functional.cross_entropy(cls, y)
    )


def test_hidden_loss_maps_layers_and_projects():
    hs = (torch.zeros(1, 2, 2), torch.ones(1, 2, 2), 2 * torch.ones(1, 2, 2))
    ht = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), torch.ones(1, 2, 4), 3 * torch.ones(1, 2, 4))
    proj = torch.nn.Linear(2, 4, bias=False)
    torch.nn.init.constant_(proj.weight, 0.5)  # projects a vector of v's to v's
    # student layer 0 (=1) vs teacher layer 1 (=1): 0; student layer 1 (=2) vs teacher 2 (=3): 1
    got = hidden_loss(hs, ht, [1, 2], proj).detach()
    assert float(got) == pytest.approx(0.5)
