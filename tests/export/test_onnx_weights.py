"""ONNX weight format names: parsing, canonical spelling, builder options and the block
size check against a model's layer widths."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.export.onnx_weights import HEAD_NODES, OnnxWeights

SMOLLM2 = {  # input features of SmolLM2-135M's layers
    "model.layers.0.self_attn.q_proj": 576,
    "model.layers.0.mlp.down_proj": 1536,
    "lm_head": 576,
}


@pytest.mark.parametrize(
    ("name", "canonical", "bits", "block", "acc", "head"),
    [
        ("fp32", "fp32", None, 32, 4, False),
        ("Float32", "fp32", None, 32, 4, False),
        ("int4", "int4-b32-acc4", 4, 32, 4, False),
        ("int8", "int8-b32-acc4", 8, 32, 4, False),
        ("int4-b64", "int4-b64-acc4", 4, 64, 4, False),
        ("int4-acc1", "int4-b32-acc1", 4, 32, 1, False),
        (" INT4-B16-ACC3-QHEAD ", "int4-b16-acc3-qhead", 4, 16, 3, True),
    ],
)
def test_names_parse_to_one_canonical_spelling(name, canonical, bits, block, acc, head):
    w = OnnxWeights.parse(name)
    assert (str(w), w.bits, w.block_size, w.accuracy_level, w.quantize_head) == (
        canonical, bits, block, acc, head,
    )  # fmt: skip
    assert OnnxWeights.parse(str(w)) == w == OnnxWeights.parse(w)
    assert w.quantized is (bits is not None)
    assert w.precision == ("fp32" if bits is None else f"int{bits}")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("int3", "no 3 bits"),
        ("int4-b48", "no block size 48"),
        ("int4-b512", "no block size 512"),
        ("int8-acc0", "no accuracy level 0"),
        ("int8-acc5", "no accuracy level 5"),
        ("q4_0", "unknown ONNX weight format 'q4_0'"),
        ("int4-acc4-b32", "unknown ONNX weight format"),  # fixed order
        ("fp16", "unknown ONNX weight format"),
    ],
)
def test_bad_names_are_one_line_errors_with_a_hint(name, message):
    with pytest.raises(WattlmError, match=message) as err:
        OnnxWeights.parse(name)
    assert "int4-b32-acc4" in err.value.hint


def test_builder_options_keep_the_head_float_unless_qhead():
    assert OnnxWeights.parse("fp32").builder_options() == []
    opts = OnnxWeights.parse("int4-b64-acc1").builder_options()
    assert opts == ["block_size=64", "accuracy_level=1", f"nodes_to_exclude={','.join(HEAD_NODES)}"]
    assert OnnxWeights.parse("int8-qhead").builder_options() == [
        "block_size=32",
        "accuracy_level=4",
    ]


def test_block_size_must_divide_every_quantized_layer():
    for name in ("fp32", "int4-b16", "int4-b32", "int4-b64", "int8-b32-qhead"):
        assert OnnxWeights.parse(name).problem(SMOLLM2) is None, name
    for name in ("int4-b128", "int8-b256"):
        block = OnnxWeights.parse(name).block_size
        assert OnnxWeights.parse(name).problem(SMOLLM2) == (
            f"block size {block} does not divide model.layers.0.self_attn.q_proj (576 input features)"
        )
    # the LM head counts only when it is quantized too
    head_only = {"model.layers.0.mlp.down_proj": 256, "lm_head": 96}
    assert OnnxWeights.parse("int4-b64").problem(head_only) is None
    assert "lm_head (96 input features)" in OnnxWeights.parse("int4-b64-qhead").problem(head_only)
