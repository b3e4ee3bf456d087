import pytest
import torch
from transformers import AutoModelForCausalLM

from wattlm.compress import CompressConfig, CompressContext, compress_
from wattlm.compress.importance import angular_distances, weight_importance
from wattlm.compress.structured import FfnPruneConfig, HeadPruneConfig, LayerDropConfig
from wattlm.errors import WattlmError
from wattlm.models.fingerprint import parameter_count
from wattlm.testing.tiny import tiny_causal_lm

HIDDEN, HEAD_DIM, INTER = 64, 16, 128
IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 40, 41, 42, 43]])


def _ctx(vocab: int) -> CompressContext:
    gen = torch.Generator().manual_seed(0)
    return CompressContext(calibration=torch.randint(3, vocab, (16, 128), generator=gen))


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(input_ids=ids).logits


def _zero_group(model, layer: int, group: int) -> None:
    """Zero every weight of one KV group (2 query heads + 1 k/v head) of one layer."""
    a = model.model.layers[layer].self_attn
    q, kv = (
        slice(group * 2 * HEAD_DIM, (group + 1) * 2 * HEAD_DIM),
        slice(group * HEAD_DIM, (group + 1) * HEAD_DIM),
    )
    with torch.no_grad():
        a.q_proj.weight[q] = 0
        a.o_proj.weight[:, q] = 0
        a.k_proj.weight[kv] = 0
        a.v_proj.weight[kv] = 0


@pytest.mark.parametrize("importance", ["l1", "l2", "taylor", "activation"])
def test_prune_heads_removes_the_dead_group_exactly(importance):
    lm = tiny_causal_lm()
    m = lm.model
    _zero_group(m, 0, 1)  # different group per layer: an index-based choice cannot pass
    _zero_group(m, 1, 0)
    kept_k = [m.model.layers[0].self_attn.k_proj.weight[:HEAD_DIM].clone()]
    kept_k.append(m.model.layers[1].self_attn.k_proj.weight[HEAD_DIM:].clone())
    ref, before = _logits(m), parameter_count(m)
    cfg = HeadPruneConfig(heads=1, importance=importance, calibration_samples=4, seq_len=24)
    report = compress_(m, cfg, _ctx(m.config.vocab_size))
    assert report["removed_kv_groups"] == [[1], [0]]
    for i, layer in enumerate(m.model.layers):
        a = layer.self_attn
        assert a.q_proj.weight.shape == (2 * HEAD_DIM, HIDDEN)
        assert a.k_proj.weight.shape == a.v_proj.weight.shape == (HEAD_DIM, HIDDEN)
        assert a.o_proj.weight.shape == (HIDDEN, 2 * HEAD_DIM)
        assert a.num_key_value_groups == 2
        torch.testing.assert_close(a.k_proj.weight, kept_k[i])
    assert (m.config.num_attention_heads, m.config.num_key_value_heads) == (2, 1)
    assert m.config.head_dim == HEAD_DIM
    removed = 2 * (2 * 2 * HEAD_DIM * HIDDEN + 2 * HEAD_DIM * HIDDEN)  # layers × (q,o + k,v)
    assert parameter_count(m) == before - removed == report["parameters_after"]
    torch.testing.assert_close(_logits(m), ref)  # the dead group contributed nothing


def test_prune_query_heads_within_groups():
    lm = tiny_causal_lm()
    m = lm.model
    a = m.model.layers[0].self_attn
    with torch.no_grad():  # query head 1 (group 0) and head 2 (group 1) are dead
        for h in (1, 2):
            a.q_proj.weight[h * HEAD_DIM : (h + 1) * HEAD_DIM] = 0
            a.o_proj.weight[:, h * HEAD_DIM : (h + 1) * HEAD_DIM] = 0
    cfg = HeadPruneConfig(ratio=0.5, unit="query", calibration_samples=4, seq_len=24)
    report = compress_(m, cfg, _ctx(m.config.vocab_size))
    assert report["removed_query_heads"][0] == [1, 2]
    assert (m.config.num_attention_heads, m.config.num_key_value_heads) == (2, 2)
    assert a.q_proj.weight.shape == (2 * HEAD_DIM, HIDDEN)
    assert a.k_proj.weight.shape == (2 * HEAD_DIM, HIDDEN) and a.num_key_value_groups == 1
    assert _logits(m).shape[-1] == m.config.vocab_size


@pytest.mark.parametrize("importance", ["l2", "taylor", "activation"])
def test_prune_ffn_drops_dead_channels(importance):
    lm = tiny_causal_lm()
    m = lm.model
    dead = [torch.randperm(INTER, generator=torch.Generator().manual_seed(i))[:32] for i in (0, 1)]
    for layer, idx in zip(m.model.layers, dead, strict=True):
        with torch.no_grad():
            layer.mlp.gate_proj.weight[idx] = 0
            layer.mlp.up_proj.weight[idx] = 0
            layer.mlp.down_proj.weight[:, idx] = 0
    ref, before = _logits(m), parameter_count(m)
    cfg = FfnPruneConfig(ratio=0.25, importance=importance, calibration_samples=4, seq_len=24)
    report = compress_(m, cfg, _ctx(m.config.vocab_size))
    assert m.config.intermediate_size == report["intermediate_size"] == 96
    for layer in m.model.layers:
        assert layer.mlp.gate_proj.weight.shape == layer.mlp.up_proj.weight.shape == (96, HIDDEN)
        assert layer.mlp.down_proj.weight.shape == (HIDDEN, 96)
        assert (layer.mlp.down_proj.weight.abs().sum(0) > 0).all()  # no dead channel kept
    assert parameter_count(m) == before - 2 * 3 * 32 * HIDDEN
    assert report["removed_importance_share"] == [0.0, 0.0]
    torch.testing.assert_close(_logits(m), ref)


def test_activation_importance_judges_what_a_channel_writes():
    """Channels whose gate row is zero write nothing, however large their down column:
    "activation" removes them (outputs unchanged), "l2" keeps them."""
    pruned = {}
    for importance in ("activation", "l2"):
        m = tiny_causal_lm().model
        silent = torch.arange(0, INTER, 4)  # 32 channels per layer
        with torch.no_grad():
            for layer in m.model.layers:
                layer.mlp.gate_proj.weight[silent] = 0
                layer.mlp.down_proj.weight[:, silent] *= 10
        ref = _logits(m)
        cfg = FfnPruneConfig(ratio=0.25, importance=importance, calibration_samples=4, seq_len=24)
        compress_(m, cfg, _ctx(m.config.vocab_size))
        pruned[importance] = torch.allclose(_logits(m), ref, atol=1e-5)
    assert pruned == {"activation": True, "l2": False}


def test_ffn_rounds_to_multiple_of():
    m = tiny_causal_lm().model
    compress_(
        m, FfnPruneConfig(ratio=0.3, multiple_of=32, importance="l1")
    )  # 128 × 0.7 = 89.6 → 96
    assert m.config.intermediate_size == 96 == m.model.layers[1].mlp.up_proj.out_features


def _identity_layer(model, i: int) -> None:
    with torch.no_grad():  # residual branches output zero: the layer passes its input on
        model.model.layers[i].self_attn.o_proj.weight.zero_()
        model.model.layers[i].mlp.down_proj.weight.zero_()


def test_drop_layers_angular_picks_identity_layer_and_cache_works():
    m = tiny_causal_lm(layers=4).model
    _identity_layer(m, 1)
    ref = _logits(m)
    d = angular_distances(m, m.model.layers, _ctx(m.config.vocab_size).calibration)
    assert d[1] < 1e-3 < min(d[0], d[2], d[3])
    report = compress_(m, LayerDropConfig(ratio=0.25, calibration_samples=4, seq_len=24), _ctx(300))
    assert report["removed_layers"] == [1] and m.config.num_hidden_layers == 3
    assert [layer.self_attn.layer_idx for layer in m.model.layers] == [0, 1, 2]
    torch.testing.assert_close(_logits(m), ref, atol=1e-4, rtol=1e-4)
    kw = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 2}
    with torch.no_grad():
        cached = m.generate(IDS, use_cache=True, **kw)
        plain = m.generate(IDS, use_cache=False, **kw)
    assert cached.shape == (1, IDS.shape[1] + 6) and torch.equal(cached, plain)


def test_drop_explicit_layers_removes_exactly_those():
    m = tiny_causal_lm(layers=4).model
    keep = [m.model.layers[i] for i in (0, 2)]
    before = parameter_count(m)
    per_layer = sum(p.numel() for p in m.model.layers[1].parameters())
    report = compress_(m, LayerDropConfig(layers=(3, 1)))
    assert report["removed_layers"] == [1, 3]
    assert list(m.model.layers) == keep and m.config.num_hidden_layers == 2
    assert parameter_count(m) == before - 2 * per_layer
    with torch.no_grad():
        m.generate(IDS, max_new_tokens=3, do_sample=False, pad_token_id=2)


@pytest.mark.parametrize("importance", ["l1", "l2", "taylor"])
def test_drop_layers_weight_criteria_pick_zeroed_layer(importance):
    m = tiny_causal_lm(layers=3).model
    with torch.no_grad():
        for p in m.model.layers[1].parameters():
            p.mul_(0.01)
    cfg = LayerDropConfig(ratio=0.34, importance=importance, calibration_samples=4, seq_len=24)
    assert compress_(m, cfg, _ctx(300))["removed_layers"] == [1]


def test_drop_layers_index_keeps_last_layer_and_layer_types():
    m = tiny_causal_lm(layers=4).model
    m.config.layer_types = ["full_attention"] * 3 + ["sliding_attention"]
    assert compress_(m, LayerDropConfig(ratio=0.5, importance="index"))["removed_layers"] == [1, 2]
    assert m.config.layer_types == ["full_attention", "sliding_attention"]


@pytest.mark.parametrize(
    "cfg",
    [
        HeadPruneConfig(heads=1),
        HeadPruneConfig(
            ratio=0.5, unit="query", importance="taylor", calibration_samples=4, seq_len=24
        ),
        FfnPruneConfig(ratio=0.25, multiple_of=32),
        LayerDropConfig(layers=(0,)),
    ],
)
def test_save_pretrained_round_trip(tmp_path, cfg):
    lm = tiny_causal_lm(layers=3)
    compress_(lm.model, cfg, _ctx(lm.model.config.vocab_size))
    lm.model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert parameter_count(again) == parameter_count(lm.model)
    torch.testing.assert_close(_logits(again), _logits(lm.model))


def test_weight_importance_rows_and_columns():
    lin = torch.nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.arange(12.0).view(3, 4))
    s = weight_importance(lin, {"r": (lin.weight, 0), "c": (lin.weight, 1)}, "l2")
    torch.testing.assert_close(s["r"], lin.weight.detach().pow(2).sum(1))
    torch.testing.assert_close(s["c"], lin.weight.detach().pow(2).sum(0))


def test_taylor_leaves_grad_flags_untouched():
    m = tiny_causal_lm().model
    w = m.model.layers[0].mlp.up_proj.weight
    s = weight_importance(m, {"w": (w, 0)}, "taylor", _ctx(300).calibration)
    assert s["w"].shape == (INTER,) and (s["w"] > 0).all() and w.grad is None
    assert all(p.requires_grad for p in m.parameters())


@pytest.mark.parametrize(
    "cfg",
    [
        HeadPruneConfig(heads=1, importance="taylor", calibration_samples=3, seq_len=9),
        HeadPruneConfig(ratio=0.5, unit="query"),
        FfnPruneConfig(ratio=0.4, importance="l1", multiple_of=16),
        LayerDropConfig(ratio=0.25),
        LayerDropConfig(layers=(4, 2)),
    ],
)
def test_config_json_round_trip(cfg):
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    assert CompressConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "cls", "match"),
    [
        ({"ratio": 1.0}, HeadPruneConfig, "ratio must be in"),
        ({}, HeadPruneConfig, "exactly one of ratio or heads"),
        ({"ratio": 0.5, "heads": 1}, HeadPruneConfig, "exactly one"),
        ({"heads": 0}, HeadPruneConfig, "heads must be >= 1"),
        ({"heads": 1, "unit": "head"}, HeadPruneConfig, "unknown unit"),
        ({"heads": 1, "importance": "angular"}, HeadPruneConfig, "unknown importance"),
        ({"ratio": 0.0}, FfnPruneConfig, "ratio must be in"),
        ({"multiple_of": 0}, FfnPruneConfig, "multiple_of"),
        ({"ratio": 1.5}, LayerDropConfig, "ratio must be in"),
        ({"layers": (1, 1)}, LayerDropConfig, "repeat"),
        ({"layers": (-1,)}, LayerDropConfig, ">= 0"),
        ({"layers": ()}, LayerDropConfig, "at least one"),
        ({"layers": ("2",)}, LayerDropConfig, "integer indices"),
    ],
)
def test_invalid_configs(kwargs, cls, match):
    with pytest.raises(WattlmError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (HeadPruneConfig(heads=2), "cannot remove 2 of 2 KV groups"),
        (HeadPruneConfig(heads=3), "cannot remove 3 of 2 KV groups"),
        (HeadPruneConfig(heads=1, unit="query"), "not a multiple"),
        (HeadPruneConfig(heads=4, unit="query"), "cannot remove 2 of 2 query heads"),
        (HeadPruneConfig(ratio=0.1), "cannot remove 0 of 2"),
        (FfnPruneConfig(ratio=0.01), "nothing to prune"),
        (LayerDropConfig(layers=(2,)), "out of range"),
        (LayerDropConfig(layers=(0, 1)), "cannot remove 2 of 2 layers"),
    ],
)
def test_impossible_pruning_fails_before_any_work(cfg, match):
    m = tiny_causal_lm().model
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(WattlmError, match=match):
        compress_(m, cfg)
    after = m.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert m.config.num_attention_heads == 4 and m.config.num_hidden_layers == 2


def test_non_llama_model_is_refused():
    from wattlm.testing.tiny import tiny_classifier

    with pytest.raises(WattlmError, match="Llama-family"):
        compress_(tiny_classifier().model, FfnPruneConfig())
