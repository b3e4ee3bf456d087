"""Data parallel: 2 CPU processes under torchrun (gloo) train exactly like 1 process at the
same global batch."""

import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from wattlm.cli.main import main
from wattlm.models.load import save_model
from wattlm.report.result import load_result
from wattlm.testing.tiny import tiny_classifier

pytestmark = pytest.mark.slow  # two extra Python processes start torch: ~20 s on 2 cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path, labelled_file):
    lm = tiny_classifier()
    lm.model.config.hidden_dropout_prob = lm.model.config.attention_probs_dropout_prob = 0.0
    model = str(save_model(lm, tmp_path / "tiny"))
    common = ["--model", model, "--data", labelled_file, "--max-steps", "3", "--seq-len", "32",
              "--eval-max-samples", "8", "--meter", "estimate", "--lr", "1e-3", "--no-progress"]  # fmt: skip
    one = tmp_path / "one"
    assert main(["train", "finetune", *common, "--batch-size", "8", "--out", str(one)]) == 0
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "wattlm", "train", "finetune", *common, "--batch-size", "4", "--out", str(two)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w1 = load_file(str(one / "model" / "model.safetensors"))
    w2 = load_file(str(two / "model" / "model.safetensors"))
    start = lm.model.state_dict()
    assert any(not torch.equal(w1[n], start[n]) for n in w1)  # it trained
    for name in w1:
        assert torch.allclose(w1[name], w2[name], atol=1e-5), name
    r1, r2 = load_result(one), load_result(two)
    t1, t2 = r1["training"], r2["training"]
    assert (t2["world_size"], t2["global_batch_size"], t2["samples"]) == (2, 8, 24)
    assert (t1["global_batch_size"], t1["samples"]) == (8, 24)
    assert t2["energy_scope"] == "sum over 2 processes"
    assert t2["loss_first"] == pytest.approx(t1["loss_first"], rel=1e-5)
    assert sorted(p.name for p in two.iterdir()) == [
        "config.json",
        "log.jsonl",
        "model",
        "result.json",
    ]
