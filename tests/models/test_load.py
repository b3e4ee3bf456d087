import pytest
import torch

from wattlm.errors import WattlmError
from wattlm.models.fingerprint import disk_bytes, parameter_count, state_dict_sha256, weight_bytes
from wattlm.models.load import load_model, save_model
from wattlm.testing.tiny import tiny_causal_lm, tiny_classifier


def test_save_then_load_gives_identical_weights(tmp_path):
    lm = tiny_causal_lm(seed=1)
    out = save_model(lm, tmp_path / "m")
    assert (out / "model.safetensors").is_file()
    back = load_model(str(out))
    assert back.format == "hf"
    assert state_dict_sha256(back.model) == state_dict_sha256(lm.model)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(back.model(ids).logits, lm.model(ids).logits)
    assert back.describe()["disk_bytes"] == disk_bytes(out) > 0
    assert not list(tmp_path.glob(".tmp-*"))


def test_classifier_round_trip(tmp_path):
    clf = tiny_classifier(num_labels=3)
    back = load_model(str(save_model(clf, tmp_path / "c")), task="sequence-classification")
    assert back.model.config.num_labels == 3
    assert back.describe()["architecture"] == "BertForSequenceClassification"


def test_sizes_count_tied_weights_once():
    lm = tiny_causal_lm()
    n = parameter_count(lm.model)
    assert n == sum(p.numel() for p in lm.model.parameters())
    assert weight_bytes(lm.model) >= 4 * n  # fp32 params + buffers (rotary inv_freq)
    lm.model.to(torch.bfloat16)
    assert weight_bytes(lm.model) < 4 * n


def test_fingerprint_changes_with_weights():
    lm = tiny_causal_lm()
    before = state_dict_sha256(lm.model)
    with torch.no_grad():
        lm.model.lm_head.weight[0, 0] += 1
    assert state_dict_sha256(lm.model) != before


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("does/not/exist.gguf", "model file not found"),
        ("./nowhere", "model not found"),
    ],
)
def test_missing_model(spec, message):
    with pytest.raises(WattlmError, match=message):
        load_model(spec)


def test_folder_without_config(tmp_path):
    with pytest.raises(WattlmError, match="no config.json"):
        load_model(str(tmp_path))


def test_unsupported_file(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(WattlmError, match="unsupported model file"):
        load_model(str(f))


def test_bad_options(tmp_path):
    with pytest.raises(WattlmError, match="unknown dtype"):
        load_model("x", dtype="int3")
    with pytest.raises(WattlmError, match="unknown device"):
        load_model("x", device="tpu")
    with pytest.raises(WattlmError, match="unknown task"):
        load_model(str(save_model(tiny_causal_lm(), tmp_path / "m")), task="translation")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error path")
def test_cuda_requested_without_cuda():
    with pytest.raises(WattlmError, match="CUDA is not available"):
        load_model("x", device="cuda")


def test_hub_id_without_a_reachable_hub_fails_fast_and_clearly(monkeypatch, tmp_path):
    import wattlm.models.load as load_mod

    monkeypatch.setattr(load_mod, "_hub_reachable", lambda: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty local HF cache
    with pytest.raises(WattlmError, match="from the model hub.*pass a local folder or .gguf"):
        load_model("some-org/some-model")
