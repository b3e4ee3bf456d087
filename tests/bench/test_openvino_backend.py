"""The OpenVINO backend on tiny converted models: same greedy tokens as torch (in float32),
the KV cache decodes exactly like a full re-forward, quality scored on OpenVINO's own
logits, NNCF-compressed weights really differ, and every failure is a WattlmError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wattlm.bench.backends import backend_class
from wattlm.bench.backends.torch_eager import TorchBackend
from wattlm.errors import WattlmError
from wattlm.testing.tiny import varied_tiny_causal_lm

pytest.importorskip("openvino")
from wattlm.bench.backends.openvino import OpenVinoBackend, OpenVinoLogProbs
from wattlm.export.openvino_export import ALL_LOGITS_XML, MODEL_XML, export_openvino

PROMPTS = [[5, 17, 33, 80, 91, 7], [120, 4, 64, 200, 11, 9]]
WINDOW = [5, 17, 33, 80, 91, 7, 44, 120, 4, 64, 200, 11]


@pytest.fixture(scope="module")
def tiny():
    return varied_tiny_causal_lm()


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    return export_openvino(tiny, tmp_path_factory.mktemp("ov-fp32"))


@pytest.fixture(scope="module")
def int8(tiny, tmp_path_factory):
    pytest.importorskip("nncf")
    return export_openvino(tiny, tmp_path_factory.mktemp("ov-int8"), weights="int8")


def _torch_log_probs(lm, window):
    with torch.no_grad():
        return torch.log_softmax(lm.model(torch.tensor([window])).logits[0].float(), dim=-1)


def test_export_writes_both_graphs_checked_against_torch(exported):
    folder = exported.path.parent
    assert exported.path.name == MODEL_XML and exported.all_logits_path.name == ALL_LOGITS_XML
    assert {p.name for p in folder.iterdir()} == {
        MODEL_XML, MODEL_XML.replace(".xml", ".bin"),
        ALL_LOGITS_XML, ALL_LOGITS_XML.replace(".xml", ".bin"),
    }  # fmt: skip
    assert exported.weights == "fp32"
    assert exported.max_abs_logit_diff < 1e-3
    assert exported.disk_bytes == sum(f.stat().st_size for f in folder.glob("openvino_model.*"))


@pytest.mark.parametrize("batch", [1, 2])
def test_greedy_tokens_equal_torch_in_float32(tiny, exported, batch):
    ref = TorchBackend(tiny.model).generate(PROMPTS[:batch], new_tokens=10)
    assert len(set(ref[0])) > 5  # the sequence really varies
    with OpenVinoBackend(
        exported.path.parent, threads=1, batch_size=2, inference_precision="f32"
    ) as backend:
        assert backend.generate(PROMPTS[:batch], new_tokens=10) == ref


def test_cached_decode_matches_full_reforward(tiny, exported):
    backend = OpenVinoBackend(exported.path, threads=1, batch_size=2, inference_precision="f32")
    first = backend.prefill(PROMPTS)
    rest = backend.decode(4)
    cached = backend.last_logits.copy()
    assert cached.shape == (2, tiny.model.config.vocab_size)
    seen = [[*p, f, *r[:-1]] for p, f, r in zip(PROMPTS, first, rest, strict=True)]
    fresh = OpenVinoBackend(exported.path, threads=1, batch_size=2, inference_precision="f32")
    assert fresh.prefill(seen) == [r[-1] for r in rest]
    np.testing.assert_allclose(cached, fresh.last_logits, atol=1e-4, rtol=0)
    with torch.no_grad():
        ref = tiny.model(torch.tensor(seen)).logits[:, -1].numpy()
    np.testing.assert_allclose(cached, ref, atol=1e-3, rtol=0)
    assert backend.decode(0) == [[], []]


def test_log_probs_equal_torch_on_float32_weights(tiny, exported):
    with OpenVinoLogProbs(exported.all_logits_path, threads=1, precision="f32") as fn:
        got = fn(WINDOW)
    assert got.dtype == torch.float32 and got.shape == (len(WINDOW), 320)
    torch.testing.assert_close(got, _torch_log_probs(tiny, WINDOW), atol=1e-3, rtol=0)
    assert torch.allclose(got.exp().sum(-1), torch.ones(len(WINDOW)), atol=1e-4)
    served = OpenVinoBackend(exported.path, threads=1, batch_size=1)
    with pytest.raises(WattlmError, match="last position's logits only"):
        served.window_logits(WINDOW)  # the served graph cannot score a window


def test_int8_weights_are_the_served_graphs(tiny, exported, int8):
    assert int8.weights == "int8-asym"
    assert int8.disk_bytes < 0.6 * exported.disk_bytes  # 8-bit weights (+ scales), not float32
    with OpenVinoLogProbs(int8.all_logits_path, threads=1, precision="f32") as fn:
        got = fn(WINDOW)
    ref = _torch_log_probs(tiny, WINDOW)
    assert 1e-4 < (got - ref).abs().max() < 0.5  # compressed: close, yet not torch's
    # the last row is what the served graph computes in a prefill of the same window
    backend = OpenVinoBackend(int8.path, threads=1, batch_size=1, inference_precision="f32")
    backend.prefill([WINDOW])
    served = torch.log_softmax(torch.from_numpy(backend.last_logits[0]), dim=-1)
    torch.testing.assert_close(got[-1], served, atol=1e-4, rtol=0)


def test_log_probs_classmethod_exports_when_given_nothing(tiny):
    from wattlm.bench.config import BenchConfig

    cls = backend_class("openvino")
    assert "OpenVINO logits" in cls.log_probs_method
    cfg = BenchConfig(backends=("openvino",), threads=1, runtime={"inference_precision": "f32"})
    with cls.log_probs(tiny, cfg, None) as fn:
        got = fn(WINDOW[:6])
    torch.testing.assert_close(got, _torch_log_probs(tiny, WINDOW[:6]), atol=1e-3, rtol=0)


def test_arguments_and_runtime_failures(exported):
    for kwargs, message in [
        ({"threads": 0, "batch_size": 1}, "threads must be an integer >= 1"),
        ({"threads": 1, "batch_size": True}, "batch_size must be an integer >= 1"),
        ({"threads": 1, "batch_size": 1, "inference_precision": "f16"}, "not a valid setting"),
    ]:
        with pytest.raises(WattlmError, match=message):
            OpenVinoBackend(exported.path, **kwargs)
    backend = OpenVinoBackend(exported.path, threads=1, batch_size=2)
    with pytest.raises(RuntimeError, match="before prefill"):
        backend.decode(1)
    with pytest.raises(WattlmError, match="1 to 2 non-empty prompts of equal length"):
        backend.prefill([[1, 2], [3]])
    with pytest.raises(WattlmError, match="1 to 2 non-empty prompts"):
        backend.prefill([[1]] * 3)
    backend.prefill([[1, 2]])
    with pytest.raises(WattlmError, match="steps must be an integer >= 0"):
        backend.decode(-1)


def test_bad_paths_are_wattlm_errors(tmp_path):
    with pytest.raises(WattlmError, match="OpenVINO model not found"):
        OpenVinoBackend(tmp_path / "missing.xml", threads=1, batch_size=1)
    with pytest.raises(WattlmError, match="OpenVINO model not found"):
        OpenVinoBackend(tmp_path, threads=1, batch_size=1)  # folder without the IR
    junk = tmp_path / MODEL_XML
    junk.write_text("<net>not an IR</net>")
    with pytest.raises(WattlmError, match="OpenVINO cannot load"):
        OpenVinoBackend(tmp_path, threads=1, batch_size=1)


def test_describe_reads_back_what_the_plugin_runs(exported):
    with backend_class("openvino")(exported.path, threads=2, batch_size=1) as backend:
        info = backend.describe()
    assert backend_class("openvino") is OpenVinoBackend
    assert info["name"] == "openvino" and info["threads"] == 2 and info["streams"] == 1
    assert info["inference_precision_setting"] == "auto"
    assert info["inference_precision"] in ("f32", "bf16")  # the plugin's own choice
    with OpenVinoBackend(exported.path, threads=1, batch_size=1, inference_precision="f32") as b:
        assert b.describe()["inference_precision"] == "f32"


def test_config_field_weight_formats_and_checks(tiny):
    from wattlm.bench.config import BenchConfig

    cfg = BenchConfig(backends=("openvino",), openvino_weights="INT4-g64")
    assert cfg.openvino_weights == "int4-sym-g64-r100"
    assert BenchConfig.from_dict(cfg.to_dict()) == cfg
    assert BenchConfig().openvino_weights == "fp32"
    with pytest.raises(WattlmError, match="unknown OpenVINO weight format 'int4-b32'"):
        BenchConfig(openvino_weights="int4-b32")
    cls = backend_class("openvino")
    assert cls.run_dtype(cfg, {}) == "int4-sym-g64-r100"
    assert cls.run_dtype(BenchConfig(), {}) == "float32"
    with pytest.raises(WattlmError, match=r"group size 128 does not divide .* \(64 input"):
        cls.check(BenchConfig(openvino_weights="int4-g128"), tiny)
    cls.check(BenchConfig(openvino_weights="int4-g64"), tiny)  # 64 divides 64 and 128
    assert cls.weight_option() == "weights"
    assert cls.weight_formats() == ("fp32", "int8-asym", "int4-sym-g32-r100")
    with pytest.raises(WattlmError, match="my space: unknown OpenVINO weight format 'q4_0'"):
        cls.weight_formats(["q4_0"], "my space")
    with pytest.raises(WattlmError, match="twice"):
        cls.weight_formats(["int8", "int8-asym"])
    assert cls.weight_config("int4") == {"openvino_weights": "int4-sym-g32-r100"}
    assert {"int4-weight", "int8-weight", "cast"} <= cls.replaces_stages


def test_runtime_settings_go_to_the_backend_that_declares_them():
    from wattlm.bench.config import BenchConfig

    # with backend auto, each backend takes its own settings; an unknown one is refused
    cfg = BenchConfig(runtime={"flash_attn": "on", "inference_precision": "bf16"})
    assert cfg.runtime == {"flash_attn": "on", "inference_precision": "bf16"}
    assert backend_class("openvino").runtime_of(cfg) == {"inference_precision": "bf16"}
    assert backend_class("llamacpp").runtime_of(cfg) == {"flash_attn": "on"}
    with pytest.raises(WattlmError, match="unknown runtime setting"):
        BenchConfig(backends=("openvino",), runtime={"flash_attn": "on"})
    with pytest.raises(WattlmError, match="not a valid setting"):
        BenchConfig(backends=("openvino",), runtime={"inference_precision": "int8"})


@pytest.mark.assets
@pytest.mark.slow
def test_smollm2_on_openvino_scores_like_torch_and_int8_within_2_percent(tmp_path):
    """On ~512 tokens: float32 weights computed in f32 score like torch; NNCF's int8
    (asymmetric, per channel) within 2%."""
    from wattlm.assets import is_cached

    if not is_cached("smollm2-135m"):
        pytest.skip("asset smollm2-135m not fetched (run `wattlm assets fetch smollm2-135m`)")
    pytest.importorskip("nncf")
    from wattlm.bench.quality import perplexity
    from wattlm.data.text import load_text
    from wattlm.models.load import load_model

    lm = load_model("smollm2-135m")
    ids = lm.tokenizer(load_text("wiki-sample", split="test")).input_ids[:513]
    ref = perplexity(lm.model, ids, max_length=512, stride=512).value
    ppl = {}
    for weights in ("fp32", "int8"):
        done = export_openvino(lm, tmp_path / weights, weights=weights)
        with OpenVinoLogProbs(done.all_logits_path, threads=2, precision="f32") as fn:
            ppl[weights] = perplexity(fn, ids, max_length=512, stride=512).value
    assert abs(ppl["fp32"] / ref - 1) < 1e-3
    assert abs(ppl["int8"] / ppl["fp32"] - 1) < 0.02
