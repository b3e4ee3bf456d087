"""The ONNX Runtime backend on tiny exported models: same greedy tokens as torch, the KV
cache decodes exactly like a full re-forward, and every failure is a WattlmError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wattlm.bench.backends import backend_class
from wattlm.bench.backends.torch_eager import TorchBackend
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from wattlm.bench.backends.onnxruntime import OnnxRuntimeBackend
from wattlm.export.onnx_export import export_onnx

PROMPTS = [[5, 17, 33, 80, 91, 7], [120, 4, 64, 200, 11, 9]]


def varied_tiny():
    """The tiny Llama with larger weights, so greedy tokens differ step to step."""
    lm = tiny_causal_lm(seed=3)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in lm.model.parameters():
            if p.dim() == 2:
                p.normal_(std=0.2)
    return lm


@pytest.fixture(scope="module")
def tiny():
    return varied_tiny()


@pytest.fixture(scope="module", params=["builder", "torch"])
def exported(request, tiny, tmp_path_factory):
    if request.param == "builder":
        pytest.importorskip("onnxruntime_genai")
    out = tmp_path_factory.mktemp(f"onnx-{request.param}")
    return export_onnx(tiny, out, method=request.param).path


@pytest.mark.parametrize("batch", [1, 2])
def test_greedy_tokens_equal_torch(tiny, exported, batch):
    ref = TorchBackend(tiny.model).generate(PROMPTS[:batch], new_tokens=10)
    assert len(set(ref[0])) > 5  # the sequence really varies
    with OnnxRuntimeBackend(exported.parent, threads=1, batch_size=2) as backend:
        assert backend.generate(PROMPTS[:batch], new_tokens=10) == ref


def test_cached_decode_matches_full_reforward(tiny, exported):
    backend = OnnxRuntimeBackend(exported, threads=1, batch_size=2)
    first = backend.prefill(PROMPTS)
    rest = backend.decode(4)
    cached = backend.last_logits.copy()
    assert cached.shape == (2, tiny.model.config.vocab_size)
    seen = [[*p, f, *r[:-1]] for p, f, r in zip(PROMPTS, first, rest, strict=True)]
    fresh = OnnxRuntimeBackend(exported, threads=1, batch_size=2)
    assert fresh.prefill(seen) == [r[-1] for r in rest]
    np.testing.assert_allclose(cached, fresh.last_logits, atol=1e-4, rtol=0)
    with torch.no_grad():
        ref = tiny.model(torch.tensor(seen)).logits[:, -1].numpy()
    np.testing.assert_allclose(cached, ref, atol=1e-4, rtol=0)
    assert backend.decode(0) == [[], []]


def test_bad_paths_are_wattlm_errors(tmp_path):
    with pytest.raises(WattlmError, match="ONNX model not found"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx", threads=1, batch_size=1)
    with pytest.raises(WattlmError, match="ONNX model not found"):
        OnnxRuntimeBackend(tmp_path, threads=1, batch_size=1)  # folder without model.onnx
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(WattlmError, match="ONNX Runtime cannot load"):
        OnnxRuntimeBackend(tmp_path, threads=1, batch_size=1)


def test_graph_without_kv_cache_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    y = helper.make_tensor_value_info("logits", TensorProto.INT64, ["b", "s"])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input_ids"], ["logits"])], "g", [x], [y]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(WattlmError, match="not a KV-cache decoder"):
        OnnxRuntimeBackend(tmp_path / "m.onnx", threads=1, batch_size=1)


def test_arguments_and_runtime_failures(exported):
    for kwargs, message in [
        ({"threads": 0, "batch_size": 1}, "threads must be an integer >= 1"),
        ({"threads": 1, "batch_size": True}, "batch_size must be an integer >= 1"),
    ]:
        with pytest.raises(WattlmError, match=message):
            OnnxRuntimeBackend(exported, **kwargs)
    backend = OnnxRuntimeBackend(exported, threads=1, batch_size=2)
    with pytest.raises(RuntimeError, match="before prefill"):
        backend.decode(1)
    with pytest.raises(WattlmError, match="1 to 2 non-empty prompts of equal length"):
        backend.prefill([[1, 2], [3]])
    with pytest.raises(WattlmError, match="1 to 2 non-empty prompts"):
        backend.prefill([[1]] * 3)
    with pytest.raises(WattlmError, match="ONNX Runtime failed"):
        backend.prefill([[1, 10**6]])  # token id outside the vocabulary
    backend.prefill([[1, 2]])
    with pytest.raises(WattlmError, match="steps must be an integer >= 0"):
        backend.decode(-1)


def test_describe_and_registry(exported):
    with backend_class("onnxruntime")(exported, threads=2, batch_size=1) as backend:
        info = backend.describe()
    assert backend_class("onnxruntime") is OnnxRuntimeBackend
    assert info["name"] == "onnxruntime"
    assert (info["threads"], info["inter_op_threads"]) == (2, 1)
    assert info["execution_mode"] == "sequential"
    assert info["model_file"] == str(exported)
