"""ONNX export with an explicit KV cache: both routes' graphs, int4, argument checks, and
the real SmolLM2 giving torch's greedy tokens on ONNX Runtime."""

from __future__ import annotations

import pytest
import torch

from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm, varied_tiny_causal_lm

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from wattlm.bench.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from wattlm.export.onnx_export import StepModule, export_onnx, io_names  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return varied_tiny_causal_lm()


@pytest.fixture(scope="module", params=["builder", "torch"])
def exported(request, tiny, tmp_path_factory):
    if request.param == "builder":
        pytest.importorskip("onnxruntime_genai")
    return export_onnx(tiny, tmp_path_factory.mktemp(request.param), method=request.param)


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_graph_is_a_kv_cache_step_function(exported, tiny):
    model = onnx.load(str(exported.path), load_external_data=False)
    inputs, outputs = io_names(tiny.model.config.num_hidden_layers)
    assert sorted(i.name for i in model.graph.input) == sorted(inputs)  # the builder puts
    assert sorted(o.name for o in model.graph.output) == sorted(outputs)  # keys first
    ids, mask, past = (next(i for i in model.graph.input if i.name == n) for n in inputs[:3])
    assert all(isinstance(d, str) for d in _dims(ids) + _dims(mask))  # batch, sequence
    batch, _, past_len, _ = _dims(past)
    assert isinstance(batch, str) and isinstance(past_len, str)
    assert _dims(model.graph.output[0])[1:] == [1, tiny.model.config.vocab_size]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 21
    files = sum(f.stat().st_size for f in exported.path.parent.glob("model.onnx*"))
    assert exported.disk_bytes == files > 4 * sum(p.numel() for p in tiny.model.parameters())
    assert 0 <= exported.max_abs_logit_diff < 1e-4
    assert exported.export_s > 0 and exported.precision == "fp32"
    if exported.method == "torch":
        onnx.checker.check_model(str(exported.path))


def test_builder_int4_stores_4bit_weights(tiny, tmp_path):
    pytest.importorskip("onnxruntime_genai")
    int4 = export_onnx(tiny, tmp_path, precision="int4")
    fp32_bytes = 4 * sum(p.numel() for p in tiny.model.parameters())
    graph = onnx.load(str(int4.path), load_external_data=False).graph
    assert sum(n.op_type == "MatMulNBits" for n in graph.node) >= 4 * 2  # qkv, o, mlp per layer
    assert int4.disk_bytes < 0.5 * fp32_bytes
    assert int4.max_abs_logit_diff > 1e-3  # weights really changed
    tokens = OnnxRuntimeBackend(int4.path, threads=1, batch_size=1).generate([[5, 6, 7]], 5)
    assert len(tokens[0]) == 5


def test_builder_int8_keeps_head_and_embedding_float(tiny, tmp_path):
    pytest.importorskip("onnxruntime_genai")
    int8 = export_onnx(tiny, tmp_path, precision="int8-b16-acc4")
    assert int8.precision == "int8-b16-acc4"
    graph = onnx.load(str(int8.path), load_external_data=False).graph
    packed = [n for n in graph.node if n.op_type == "MatMulNBits"]
    attrs = [{a.name: a.i for a in n.attribute} for n in packed]
    assert len(packed) == 5 * 2  # qkv (fused), o, gate, up, down in each of 2 layers
    assert {(a["bits"], a["block_size"]) for a in attrs} == {(8, 16)}
    assert {a["accuracy_level"] for a in attrs} == {4}
    ops = {n.name: n.op_type for n in graph.node}
    assert ops["/lm_head/MatMul"] == "MatMul" and ops["/model/embed_tokens/Gather"] == "Gather"
    assert 1e-4 < int8.max_abs_logit_diff < 0.5  # 8 bits: changed, but little


def test_bad_arguments_fail_before_any_work(tiny, tmp_path):
    with pytest.raises(WattlmError, match="unknown ONNX export method 'optimum'"):
        export_onnx(tiny, tmp_path / "a", method="optimum")
    with pytest.raises(WattlmError, match="'int4-b32-acc4' is not available with method 'torch'"):
        export_onnx(tiny, tmp_path / "b", method="torch", precision="int4")
    with pytest.raises(WattlmError, match="unknown ONNX weight format 'int4-g32'"):
        export_onnx(tiny, tmp_path / "c", precision="int4-g32")
    with pytest.raises(WattlmError, match="no block size 48"):
        export_onnx(tiny, tmp_path / "d", precision="int4-b48")
    # the tiny Llama's layers take 64 or 128 input features: 128 does not divide 64
    with pytest.raises(WattlmError, match=r"block size 128 does not divide .*q_proj \(64 input"):
        export_onnx(tiny, tmp_path / "e", precision="int4-b128")
    assert not any(tmp_path.iterdir())


def test_all_positions_graph_gives_every_position(tiny, exported, tmp_path):
    import numpy as np
    import onnxruntime as ort

    from wattlm.export.onnx_export import ALL_LOGITS_FILE, all_positions_graph

    full = all_positions_graph(exported.path)
    if exported.method == "torch":  # the traced model keeps the last position itself
        assert full is None
        return
    assert full == exported.path.parent / ALL_LOGITS_FILE
    assert full.stat().st_size < 0.5 * exported.path.stat().st_size or full.stat().st_size < 1e6
    assert all_positions_graph(full) == full  # already every position
    ids = [5, 17, 33, 80, 91, 7, 44]
    sess = ort.InferenceSession(str(full), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)), np.int64)}
    for inp in sess.get_inputs():
        if inp.name.startswith("past_key_values."):
            feeds[inp.name] = np.zeros((1, 2, 0, 16), np.float32)
    got = sess.run(["logits"], feeds)[0]
    with torch.no_grad():
        ref = tiny.model(torch.tensor([ids])).logits.numpy()
    assert got.shape == ref.shape == (1, len(ids), tiny.model.config.vocab_size)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_torch_route_needs_float32(tmp_path):
    lm = tiny_causal_lm()
    lm.model.to(torch.bfloat16)
    with pytest.raises(WattlmError, match="float32 models only"):
        export_onnx(lm, tmp_path, method="torch")


def test_step_module_continues_a_cache_like_a_full_forward(tiny):
    ids = torch.tensor([[5, 17, 33, 80, 91, 7, 44]])
    step = StepModule(tiny.model)
    layers, kv = tiny.model.config.num_hidden_layers, tiny.model.config.num_key_value_heads
    empty = [torch.zeros(1, kv, 0, 16)] * (2 * layers)
    with torch.no_grad():
        _, *past = step(ids[:, :5], torch.ones(1, 5, dtype=torch.long), *empty)
        logits, *present = step(ids[:, 5:], torch.ones(1, 7, dtype=torch.long), *past)
        full = tiny.model(ids).logits[:, -1:]
    assert [t.shape[2] for t in past] == [5] * 4 and [t.shape[2] for t in present] == [7] * 4
    torch.testing.assert_close(logits, full, atol=1e-5, rtol=0)


@pytest.mark.assets
@pytest.mark.slow
def test_smollm2_builder_export_gives_torch_greedy_tokens(tmp_path):
    from wattlm.assets import is_cached

    if not is_cached("smollm2-135m"):
        pytest.skip("asset smollm2-135m not fetched (run `wattlm assets fetch smollm2-135m`)")
    pytest.importorskip("onnxruntime_genai")
    from wattlm.bench.backends.torch_eager import TorchBackend
    from wattlm.models.load import load_model

    lm = load_model("smollm2-135m")
    texts = [
        "The Eiffel Tower is a wrought-iron lattice tower in",
        "Photosynthesis is the process by which green plants turn light",
    ]
    prompts = [lm.tokenizer(t).input_ids[:8] for t in texts]
    done = export_onnx(lm, tmp_path)
    assert done.max_abs_logit_diff < 1e-3
    assert 0.5e9 < done.disk_bytes < 0.6e9  # fp32, embedding and lm_head stored once
    ref = TorchBackend(lm.model).generate(prompts, new_tokens=8)
    with OnnxRuntimeBackend(tmp_path, threads=2, batch_size=2) as backend:
        assert backend.generate(prompts, new_tokens=8) == ref
