"""The ONNX Runtime backend on tiny exported models: same greedy tokens as torch, the KV
cache decodes exactly like a full re-forward, and every failure is a WattlmError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wattlm.bench.backends import backend_class
from wattlm.bench.backends.torch_eager import TorchBackend
from wattlm.errors import WattlmError
from wattlm.testing.tiny import varied_tiny_causal_lm

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from wattlm.bench.backends.onnxruntime import OnnxRuntimeBackend
from wattlm.export.onnx_export import export_onnx

PROMPTS = [[5, 17, 33, 80, 91, 7], [120, 4, 64, 200, 11, 9]]


@pytest.fixture(scope="module")
def tiny():
    return varied_tiny_causal_lm()


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


# -- weight formats and quality measured on ONNX Runtime itself --------------------------------
WINDOW = [5, 17, 33, 80, 91, 7, 44, 120, 4, 64, 200, 11]


def _torch_log_probs(lm, window):
    with torch.no_grad():
        return torch.log_softmax(lm.model(torch.tensor([window])).logits[0].float(), dim=-1)


def test_log_probs_equal_torch_on_a_float32_export(tiny, exported):
    from wattlm.bench.backends.onnxruntime import OnnxLogProbs

    with OnnxLogProbs(exported, threads=1) as fn:
        got = fn(WINDOW)
    assert got.dtype == torch.float32 and got.shape == (len(WINDOW), 320)
    # the builder's graph is scored in one prefill (a copy with every position), the torch
    # route's one token at a time
    assert fn.path.name == ("model.onnx" if "torch" in str(exported) else "model_all_logits.onnx")
    torch.testing.assert_close(got, _torch_log_probs(tiny, WINDOW), atol=1e-3, rtol=0)
    assert torch.allclose(got.exp().sum(-1), torch.ones(len(WINDOW)), atol=1e-4)


def test_log_probs_classmethod_exports_when_given_nothing(tiny):
    from wattlm.bench.config import BenchConfig

    pytest.importorskip("onnxruntime_genai")
    cls = backend_class("onnxruntime")
    assert "ONNX Runtime logits" in cls.log_probs_method
    cfg = BenchConfig(backends=("onnxruntime",), threads=1)
    with cls.log_probs(tiny, cfg, None) as fn:
        got = fn(WINDOW[:6])
    torch.testing.assert_close(got, _torch_log_probs(tiny, WINDOW[:6]), atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def int4(tiny, tmp_path_factory):
    pytest.importorskip("onnxruntime_genai")
    return export_onnx(tiny, tmp_path_factory.mktemp("int4"), precision="int4-b16-acc4")


def test_int4_log_probs_are_the_served_graphs(tiny, int4):
    from wattlm.bench.backends.onnxruntime import OnnxLogProbs

    with OnnxLogProbs(int4.path, threads=1) as fn:
        got = fn(WINDOW)
    ref = _torch_log_probs(tiny, WINDOW)
    assert (got - ref).abs().max() > 1e-2  # 4-bit weights: really different from torch's
    # the last row is what the served graph computes in a prefill of the same window
    backend = OnnxRuntimeBackend(int4.path, threads=1, batch_size=1)
    backend.prefill([WINDOW])
    served = torch.log_softmax(torch.from_numpy(backend.last_logits[0]), dim=-1)
    torch.testing.assert_close(got[-1], served, atol=1e-4, rtol=0)


def test_config_field_and_checks(tiny):
    from wattlm.bench.config import BenchConfig

    cfg = BenchConfig(backends=("onnxruntime",), onnx_weights="INT4-b64")
    assert cfg.onnx_weights == "int4-b64-acc4"
    assert BenchConfig.from_dict(cfg.to_dict()) == cfg
    assert BenchConfig().onnx_weights == "fp32"
    with pytest.raises(WattlmError, match="unknown ONNX weight format 'int4-g32'"):
        BenchConfig(onnx_weights="int4-g32")
    cls = backend_class("onnxruntime")
    assert cls.run_dtype(cfg, {}) == "int4-b64-acc4"
    assert cls.run_dtype(BenchConfig(), {}) == "float32"
    with pytest.raises(WattlmError, match="written by the builder route only"):
        cls.check(BenchConfig(onnx_weights="int8", onnx_export_method="torch"), tiny)
    with pytest.raises(WattlmError, match=r"block size 128 does not divide .* \(64 input"):
        cls.check(BenchConfig(onnx_weights="int4-b128"), tiny)
    cls.check(BenchConfig(onnx_weights="int4-b64"), tiny)  # 64 divides 64 and 128


def test_weight_formats_are_the_backends_own():
    cls = backend_class("onnxruntime")
    assert cls.weight_option() == "weights"
    assert cls.weight_formats() == ("fp32", "int4-b32-acc4", "int8-b32-acc4")
    assert cls.weight_formats("int8-b64") == ("int8-b64-acc4",)
    with pytest.raises(WattlmError, match="twice"):
        cls.weight_formats(["int4", "int4-b32-acc4"])
    with pytest.raises(WattlmError, match="my space: unknown ONNX weight format 'q4_0'"):
        cls.weight_formats(["q4_0"], "my space")
    assert cls.weight_config("int4") == {"onnx_weights": "int4-b32-acc4"}
    assert cls.weight_format_problem("int4-b256", {"q_proj": 576}).startswith("block size 256")
    # torch and llama.cpp stages: ONNX Runtime replaces torch-side precision stages
    assert {"int4-weight", "int8-weight", "cast"} <= cls.replaces_stages
    assert cls.incompatible({"int4-weight", "int8-dynamic"}) is None


@pytest.mark.assets
@pytest.mark.slow
def test_smollm2_int8_and_int4_perplexity_on_onnx_runtime(tmp_path):
    """On ~512 tokens: the fp32 export scores like torch, int8 within 2%, int4 (symmetric
    round-to-nearest, block 32) measurably worse but bounded."""
    from wattlm.assets import is_cached

    if not is_cached("smollm2-135m"):
        pytest.skip("asset smollm2-135m not fetched (run `wattlm assets fetch smollm2-135m`)")
    pytest.importorskip("onnxruntime_genai")
    from wattlm.bench.backends.onnxruntime import OnnxLogProbs
    from wattlm.bench.quality import perplexity
    from wattlm.data.text import load_text
    from wattlm.models.load import load_model

    lm = load_model("smollm2-135m")
    ids = lm.tokenizer(load_text("wiki-sample", split="test")).input_ids[:513]
    ref = perplexity(lm.model, ids, max_length=512, stride=512).value
    ppl = {}
    for weights in ("fp32", "int8", "int4"):
        done = export_onnx(lm, tmp_path / weights, precision=weights)
        with OnnxLogProbs(done.path, threads=2) as fn:
            ppl[weights] = perplexity(fn, ids, max_length=512, stride=512).value
    assert abs(ppl["fp32"] / ref - 1) < 1e-4
    assert ppl["fp32"] < ppl["int8"] < 1.02 * ppl["fp32"]
    # measured 25.0 against 20.8 (+20%): this checkpoint's weights sit on a Q4_1 grid
    # (asymmetric, float minimum), which symmetric int4 cannot reproduce
    assert ppl["int8"] < ppl["int4"] < 1.3 * ppl["fp32"]
