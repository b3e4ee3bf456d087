from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from wattlm.federate.codec import (
    check_update,
    decode_update,
    encode_update,
    from_record,
    quantize_int8,
    record_bytes,
    to_record,
)

RNG = np.random.default_rng(0)
BASE = {"a": RNG.normal(size=(8, 5)).astype(np.float32), "b": RNG.normal(size=7).astype(np.float32)}
LOCAL = {k: v + RNG.normal(scale=0.01, size=v.shape).astype(np.float32) for k, v in BASE.items()}


def _wire(sent):
    return from_record(to_record(sent))


def test_none_sends_the_weights_exactly():
    sent, residual = encode_update(LOCAL, BASE, "none")
    out = decode_update(_wire(sent), BASE, "none")
    assert residual is None
    assert all(np.array_equal(out[k], LOCAL[k]) for k in BASE)


def test_int8_round_trips_within_half_a_step():
    sent, _ = encode_update(LOCAL, BASE, "int8")
    assert all(sent[k].dtype == np.int8 for k in BASE)
    out = decode_update(_wire(sent), BASE, "int8")
    for i, k in enumerate(BASE):
        step = float(sent["__scales__"][i])
        assert step == pytest.approx(np.abs(LOCAL[k] - BASE[k]).max() / 127, rel=1e-6)
        err = np.abs(out[k] - LOCAL[k]).max()
        assert err <= step / 2 + 1e-6


def test_quantize_int8_of_zeros_is_exact():
    q, scale = quantize_int8(np.zeros(4, np.float32))
    assert q.tolist() == [0, 0, 0, 0] and scale == 1.0


def test_topk_sends_k_entries_exactly_and_keeps_the_rest_as_residual():
    sent, residual = encode_update(LOCAL, BASE, "topk", fraction=0.1)
    assert sent["a::idx"].size == 4 and sent["b::idx"].size == 1  # ceil(0.1·40), ceil(0.7)
    out = decode_update(_wire(sent), BASE, "topk")
    for k in BASE:
        delta = LOCAL[k] - BASE[k]
        # what was sent plus what was kept back is the whole delta
        np.testing.assert_allclose((out[k] - BASE[k]) + residual[k], delta, atol=1e-6)
        kept = np.abs(delta).reshape(-1)[sent[f"{k}::idx"]]
        assert kept.min() >= np.abs(residual[k]).max()
    # error feedback: the residual is added before the next selection
    sent2, residual2 = encode_update(BASE, BASE, "topk", fraction=0.1, residual=residual)
    out2 = decode_update(_wire(sent2), BASE, "topk")
    np.testing.assert_allclose(out2["b"] - BASE["b"] + residual2["b"], residual["b"], atol=1e-6)


def test_bytes_are_the_serialised_records_and_grow_by_the_payload_exactly():
    small = to_record({"q": np.zeros(1000, np.int8)})
    large = to_record({"q": np.zeros(1100, np.int8)})
    assert record_bytes(large) - record_bytes(small) == 100
    floats = to_record({"q": np.zeros(1000, np.float32)})
    # 3 more bytes per element, and "float32" is 3 characters longer than "int8" in the header
    assert record_bytes(floats) - record_bytes(small) == 3000 + 3
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    assert record_bytes(floats) == sum(
        len(o.deflate()) for o in get_all_nested_objects(floats).values()
    )


def test_int8_and_topk_updates_are_a_quarter_and_a_fraction_of_the_float_one():
    base = {"w": np.zeros((300, 300), np.float32)}
    local = {"w": RNG.normal(size=(300, 300)).astype(np.float32)}
    f32 = record_bytes(to_record(encode_update(local, base, "none")[0]))
    i8 = record_bytes(to_record(encode_update(local, base, "int8")[0]))
    top = record_bytes(to_record(encode_update(local, base, "topk", fraction=0.01)[0]))
    assert 4 * 90_000 < f32 < 4 * 90_000 + 2_000
    assert 90_000 < i8 < 90_000 + 2_000
    assert 8 * 900 < top < 8 * 900 + 2_000  # 900 int32 positions + 900 float32 values


def test_corrupt_updates_are_named():
    nan = {k: v.copy() for k, v in LOCAL.items()}
    nan["a"][0, 0] = np.nan
    assert check_update(nan, BASE) == "tensor 'a' has non-finite values"
    assert "shape" in check_update({**LOCAL, "b": np.zeros(3, np.float32)}, BASE)
    assert check_update(LOCAL, BASE) is None
    with pytest.raises(ValueError, match="differ"):
        decode_update({"a": LOCAL["a"]}, BASE, "none")
    sent, _ = encode_update(LOCAL, BASE, "int8")
    sent["a"] = sent["a"].reshape(-1)
    with pytest.raises(ValueError, match="shape"):
        decode_update(sent, BASE, "int8")
