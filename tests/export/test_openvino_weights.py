"""OpenVINO weight formats: parsing, canonical names, NNCF's arguments, what cannot be built."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.export.openvino_weights import OpenVinoWeights


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("fp32", "fp32"),
        ("FLOAT32", "fp32"),
        ("int8", "int8-asym"),
        ("int8-sym", "int8-sym"),
        ("int4", "int4-sym-g32-r100"),
        ("int4-asym", "int4-asym-g32-r100"),
        ("int4-g64-r80", "int4-sym-g64-r80"),
        (" Int4-Asym-G128-R50 ", "int4-asym-g128-r50"),
    ],
)
def test_names_are_completed_to_one_canonical_spelling(text, canonical):
    fmt = OpenVinoWeights.parse(text)
    assert str(fmt) == canonical
    assert OpenVinoWeights.parse(canonical) == fmt  # round trip
    assert fmt.quantized is (canonical != "fp32")


def test_nncf_options():
    assert OpenVinoWeights.parse("fp32").nncf_options() == {}
    assert OpenVinoWeights.parse("int8").nncf_options() == {"mode": "INT8_ASYM"}
    assert OpenVinoWeights.parse("int8-sym").nncf_options() == {"mode": "INT8_SYM"}
    assert OpenVinoWeights.parse("int4-g64-r75").nncf_options() == {
        "mode": "INT4_SYM",
        "group_size": 64,
        "ratio": 0.75,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q4_0", "unknown OpenVINO weight format 'q4_0'"),
        ("int2", "no 2 bits"),
        ("int4-g48", "no group size 48"),
        ("int4-r0", "the ratio is a percentage"),
        ("int4-r101", "the ratio is a percentage"),
        ("int8-g32", "int8 is per channel"),
        ("int4-b32", "unknown OpenVINO weight format"),  # ONNX's spelling is not OpenVINO's
    ],
)
def test_bad_formats_are_one_clear_error(text, message):
    with pytest.raises(WattlmError, match=message) as err:
        OpenVinoWeights.parse(text)
    assert "int4-sym-g32-r100" in err.value.hint


def test_a_group_size_must_divide_every_4_bit_layer_but_the_head():
    layers = {"model.layers.0.self_attn.q_proj": 576, "model.layers.0.mlp.down_proj": 1536}
    assert OpenVinoWeights.parse("int4-g64").problem(layers) is None  # 576 = 9 x 64
    assert OpenVinoWeights.parse("int4-g128").problem(layers) == (
        "group size 128 does not divide model.layers.0.self_attn.q_proj (576 input features)"
    )
    # the LM head stays 8-bit per channel: its width never counts
    assert OpenVinoWeights.parse("int4-g64").problem({"lm_head": 100}) is None
    assert OpenVinoWeights.parse("int8").problem({"q_proj": 7}) is None
