"""QAT: fake quantization on the real int8 grid, then real int8 layers that compute the same."""

import importlib.util

import pytest
import torch

from wattlm.compress import compress_
from wattlm.compress.qlinear import Int8DynamicLinear, Int8WeightLinear
from wattlm.compress.quantize import Int8WeightConfig
from wattlm.errors import WattlmError
from wattlm.models.load import load_model
from wattlm.report.result import validate_result
from wattlm.testing.tiny import tiny_causal_lm, tiny_classifier
from wattlm.train import fakequant
from wattlm.train.config import QatConfig
from wattlm.train.fakequant import convert_qat_, int8_grid, prepare_qat_
from wattlm.train.qat_training import qat, qat_targets

from .conftest import data_cfg, opts

needs_torchao = pytest.mark.skipif(
    importlib.util.find_spec("torchao") is None, reason="torchao not installed"
)
BACKENDS = ["wattlm", pytest.param("torchao", marks=needs_torchao)]
IDS = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29]])


@needs_torchao
def test_int8_grid_is_torchaos_grid():
    from torchao.quantization.qat import IntxFakeQuantizeConfig
    from torchao.quantization.qat.fake_quantizer import IntxFakeQuantizer

    torch.manual_seed(0)
    w = torch.randn(48, 64) * torch.rand(48, 1)
    fq = IntxFakeQuantizer(IntxFakeQuantizeConfig(torch.int8, "per_channel", is_symmetric=True))
    q, scale = int8_grid(w)
    assert q.dtype == torch.int8
    assert torch.equal(q.float() * scale[:, None], fq(w))


@needs_torchao
def test_both_backends_fake_quantize_alike():
    outs = {}
    for backend in ("wattlm", "torchao"):
        lm = tiny_causal_lm()
        targets = qat_targets(lm.model, ("lm_head",))
        prepare_qat_(lm.model, targets, scheme="int8-dynamic", backend=backend)
        outs[backend] = lm.model(input_ids=IDS).logits
    assert torch.allclose(outs["wattlm"], outs["torchao"], atol=1e-5)
    float_logits = tiny_causal_lm().model(input_ids=IDS).logits
    assert not torch.allclose(outs["wattlm"], float_logits, atol=1e-4)  # it does quantize


def test_gradients_pass_through_the_rounding():
    lm = tiny_causal_lm()
    prepare_qat_(lm.model, qat_targets(lm.model, ("lm_head",)), scheme="int8", backend="wattlm")
    lm.model(input_ids=IDS, labels=IDS).loss.backward()
    grad = lm.model.model.layers[0].mlp.up_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("scheme", "cls"), [("int8", Int8WeightLinear), ("int8-dynamic", Int8DynamicLinear)]
)
def test_conversion_yields_real_int8_layers_computing_the_same(scheme, cls, backend):
    lm = tiny_causal_lm()
    targets = qat_targets(lm.model, ("lm_head",))
    prepare_qat_(lm.model, targets, scheme=scheme, backend=backend)
    with torch.no_grad():
        fake = lm.model(input_ids=IDS).logits
    fake_w = fakequant.fake_quantize_weight(
        lm.model.model.layers[0].self_attn.q_proj.weight
    ).detach()
    assert convert_qat_(lm.model, targets, scheme=scheme, backend=backend) == len(targets) == 14
    layer = lm.model.model.layers[0].self_attn.q_proj
    assert type(layer) is cls
    assert layer.qweight.dtype == torch.int8
    assert not any(p.dtype.is_floating_point and p.dim() == 2 for p in layer.parameters())
    assert torch.equal(layer.dequantize(), fake_w)  # the int8 values QAT trained with
    with torch.no_grad():
        real = lm.model(input_ids=IDS).logits
    tol = 0.05 if scheme == "int8" else 1e-3  # int8-weight computes in bf16 on CPU
    assert torch.allclose(real, fake, atol=tol), (real - fake).abs().max()


@pytest.mark.parametrize("backend", BACKENDS)
def test_qat_run_saves_an_int8_model_that_loads_back(tmp_path, labelled_file, backend):
    cfg = QatConfig(
        model="tiny", data=data_cfg(labelled_file), options=opts(max_steps=3), backend=backend
    )
    lm = tiny_classifier()
    result = qat(cfg, tmp_path / "run", model=lm, progress=False)
    validate_result(result)
    q = result["quality"]
    assert q["before"]["metric"] == q["ptq"]["metric"] == q["after"]["metric"] == "accuracy"
    stage = result["compression"][-1]
    assert stage["method"] == "int8-weight" and stage["qat"]["backend"] == backend
    assert stage["config"]["skip"] == ["lm_head", "classifier", "score"]
    loaded = load_model(str(tmp_path / "run" / "model"), task="sequence-classification")
    dense = loaded.model.bert.encoder.layer[0].intermediate.dense
    assert type(dense) is Int8WeightLinear and dense.qweight.dtype == torch.int8
    assert type(loaded.model.classifier) is torch.nn.Linear  # skipped: stays float
    enc = lm.tokenizer(["the quick brown fox"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(loaded.model(**enc).logits, lm.model.eval()(**enc).logits, atol=1e-5)
    assert result["model"]["weight_bytes"] < tiny_classifier().describe()["weight_bytes"]


def test_already_quantized_model_is_refused(tmp_path, labelled_file):
    lm = tiny_classifier()
    compress_(lm.model, Int8WeightConfig(skip=("classifier",)))
    cfg = QatConfig(model="tiny", data=data_cfg(labelled_file), options=opts())
    with pytest.raises(WattlmError, match="already quantized"):
        qat(cfg, tmp_path / "run", model=lm, progress=False)


def test_missing_torchao_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a)
    )
    with pytest.raises(WattlmError, match="needs torchao"):
        fakequant.resolve_backend("torchao")
    assert fakequant.resolve_backend("auto") == "wattlm"
