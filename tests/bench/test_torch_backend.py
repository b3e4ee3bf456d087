import pytest
import torch

from wattlm.bench.backends import BACKEND_NAMES, backend_class
from wattlm.bench.backends.torch_eager import TorchBackend
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm


def test_generate_matches_transformers_greedy():
    lm = tiny_causal_lm(seed=3)
    torch.nn.init.normal_(lm.model.model.embed_tokens.weight, std=1.0)  # make outputs vary
    prompts = [[5, 17, 33, 80, 91, 7], [120, 4, 64, 200, 11, 9]]
    ours = TorchBackend(lm.model).generate(prompts, new_tokens=8)
    ref = lm.model.generate(
        torch.tensor(prompts),
        max_new_tokens=8,
        min_new_tokens=8,
        do_sample=False,
        attention_mask=torch.ones(2, 6, dtype=torch.long),
    )[:, 6:].tolist()
    assert ours == ref
    assert len({tuple(s) for s in ours}) == 2


def test_decode_returns_exactly_steps_tokens():
    backend = TorchBackend(tiny_causal_lm().model, threads=1)
    first = backend.prefill([[1, 2, 3]] * 3)
    assert len(first) == 3
    assert [len(s) for s in backend.decode(5)] == [5, 5, 5]


def test_decode_before_prefill_and_bad_threads():
    with pytest.raises(RuntimeError, match="before prefill"):
        TorchBackend(tiny_causal_lm().model).decode(1)
    with pytest.raises(WattlmError, match="threads must be >= 1"):
        TorchBackend(tiny_causal_lm().model, threads=0)


def test_registry_rejects_unknown_backend():
    assert backend_class("torch") is TorchBackend
    with pytest.raises(WattlmError, match="unknown backend 'onnx'") as err:
        backend_class("onnx")
    assert f"choose from: {', '.join(sorted(BACKEND_NAMES))}" in err.value.hint
