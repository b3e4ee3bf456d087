"""Optimizers, schedules and precision options: each really changes what runs."""

import pytest
import torch

from wattlm.errors import WattlmError
from wattlm.training.optim import (
    build_optimizer,
    build_schedule,
    check_environment,
    make_precision,
    warmup_decay,
)
from wattlm.training.options import TrainOptions


def test_warmup_then_decay():
    assert [warmup_decay(s, 10, 4, "constant") for s in (0, 2, 4, 9)] == [0.0, 0.5, 1.0, 1.0]
    assert warmup_decay(7, 10, 4, "linear") == pytest.approx(0.5)
    assert warmup_decay(7, 10, 4, "cosine") == pytest.approx(0.5)
    assert warmup_decay(10, 10, 0, "cosine") == pytest.approx(0.0)


def test_schedule_drives_the_optimizer_lr():
    model = torch.nn.Linear(2, 2)
    options = TrainOptions(lr=0.1, max_steps=4, warmup_steps=2, schedule="linear")
    opt = build_optimizer(model.named_parameters(), options)
    sched = build_schedule(opt, options, total_steps=4)
    lrs = []
    for _ in range(4):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.05, 0.1, 0.05])
    state = sched.state_dict()  # resumable without pickled code
    assert isinstance(state["lr_lambdas"][0], dict)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD), ("adafactor", torch.optim.Adafactor)],
)
def test_optimizer_choice(name, cls):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    opt = build_optimizer(model.named_parameters(), TrainOptions(optimizer=name, weight_decay=0.1))
    assert type(opt) is cls
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 0.1]  # biases and norms are not decayed
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9


def test_cuda_only_options_fail_on_cpu():
    with pytest.raises(WattlmError, match="adamw8bit"):
        check_environment(TrainOptions(optimizer="adamw8bit"), "cpu")
    with pytest.raises(WattlmError, match="fp16 training needs a CUDA GPU"):
        check_environment(TrainOptions(precision="fp16"), "cpu")
    check_environment(TrainOptions(precision="bf16"), "cpu")


def test_bf16_autocast_really_computes_in_bf16():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with make_precision(TrainOptions(precision="bf16"), "cpu").autocast():
        assert layer(x).dtype == torch.bfloat16
    with make_precision(TrainOptions(precision="fp32"), "cpu").autocast():
        assert layer(x).dtype == torch.float32
    assert layer.weight.dtype == torch.float32  # master weights stay fp32
