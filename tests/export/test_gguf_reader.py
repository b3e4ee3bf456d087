"""The GGUF reader on tiny files written with gguf.GGUFWriter: valid, truncated, corrupt;
long metadata arrays on request, tensors dequantized like gguf-py's own reader."""

from __future__ import annotations

import random

import gguf
import numpy as np
import pytest

from wattlm.errors import WattlmError
from wattlm.export.gguf_reader import GgufTensors, check_gguf


def write_gguf(path, *, vocab_size: int | None = 32, tokens: int = 100, alignment=None):
    """A llama-arch GGUF with an F32, a Q8_0 and an F16 tensor (3,136 parameters)."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny")
    w.add_context_length(128)
    if vocab_size is not None:
        w.add_vocab_size(vocab_size)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_token_list([f"tok{i}" for i in range(tokens)])
    w.add_tensor("token_embd.weight", np.arange(32 * 64, dtype=np.float32).reshape(32, 64))
    rows = np.random.default_rng(0).random((16, 64), dtype=np.float32)
    quant = gguf.GGMLQuantizationType.Q8_0
    w.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(rows, quant), raw_dtype=quant)
    w.add_tensor("output_norm.weight", np.ones(64, dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def tiny_gguf(tmp_path):
    return write_gguf(tmp_path / "tiny.gguf")


def test_valid_file_is_described(tiny_gguf):
    info = check_gguf(tiny_gguf)
    assert info.architecture == "llama"
    assert info.name == "tiny"
    assert info.version == 3
    assert info.context_length == 128
    assert info.vocab_size == 32
    assert info.tensor_count == 3
    assert info.parameter_count == 32 * 64 + 16 * 64 + 64
    assert info.file_type == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    assert info.file_type_name == "Q8_0"
    assert info.tensor_types == {"F32": 1, "Q8_0": 1, "F16": 1}
    assert info.size_bytes == tiny_gguf.stat().st_size
    assert info.metadata["tokenizer.ggml.tokens"] == "<array of 100>"
    assert info.to_dict()["path"] == str(tiny_gguf)


def test_agrees_with_gguf_reader(tiny_gguf):
    reader = gguf.GGUFReader(tiny_gguf)
    info = check_gguf(tiny_gguf)
    assert info.tensor_count == len(reader.tensors)
    assert info.data_offset == reader.data_offset
    assert info.parameter_count == sum(int(t.n_elements) for t in reader.tensors)
    end = max(t.data_offset + t.n_bytes for t in reader.tensors)
    assert info.data_offset + info.data_bytes == end


def test_long_arrays_are_read_in_full_on_request(tiny_gguf):
    info = check_gguf(tiny_gguf, arrays=("tokenizer.ggml.tokens",))
    assert info.metadata["tokenizer.ggml.tokens"] == [f"tok{i}" for i in range(100)]
    assert "tensors" not in info.to_dict()


def test_tensors_match_gguf_readers_dequantized_values(tiny_gguf):
    reader = gguf.GGUFReader(tiny_gguf)
    tensors = GgufTensors(tiny_gguf)
    assert set(tensors.info.tensors) == {t.name for t in reader.tensors}
    for t in reader.tensors:
        want = gguf.quants.dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape)))
        got = tensors[t.name]
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.array_equal(got, want)
    assert np.array_equal(tensors["token_embd.weight"][1], np.arange(64, 128, dtype=np.float32))
    assert "nope" not in tensors
    with pytest.raises(WattlmError, match="has no tensor nope"):
        tensors["nope"]


def test_vocab_size_falls_back_to_token_list(tmp_path):
    info = check_gguf(write_gguf(tmp_path / "v.gguf", vocab_size=None, tokens=40))
    assert info.vocab_size == 40


def test_custom_alignment(tmp_path):
    info = check_gguf(write_gguf(tmp_path / "a.gguf", alignment=64))
    assert info.data_offset % 64 == 0


def test_truncated_tensor_data_is_detected(tiny_gguf, tmp_path):
    info = check_gguf(tiny_gguf)
    end = info.data_offset + info.data_bytes
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[: end - 1])
    with pytest.raises(WattlmError, match=f"truncated: tensor data needs {end} bytes") as err:
        check_gguf(cut)
    assert str(cut) in str(err.value)
    assert f"the file has {end - 1}" in str(err.value)


@pytest.mark.parametrize("keep", [30, 200, 600])
def test_truncated_header_is_detected(tiny_gguf, tmp_path, keep):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[:keep])
    with pytest.raises(WattlmError, match="truncated or corrupt: its header runs past"):
        check_gguf(cut)


def test_random_bytes_are_not_gguf(tmp_path):
    path = tmp_path / "random.gguf"
    path.write_bytes(random.Random(1).randbytes(4096))
    with pytest.raises(WattlmError, match="random.gguf is not a GGUF file"):
        check_gguf(path)


def test_tiny_and_empty_files(tmp_path):
    for size in (0, 3, 23):
        path = tmp_path / f"small{size}.gguf"
        path.write_bytes(b"GGUF"[:size] + b"\0" * max(0, size - 4))
        with pytest.raises(WattlmError, match=f"only {size} bytes"):
            check_gguf(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(WattlmError, match="GGUF file not found: .*nope.gguf"):
        check_gguf(tmp_path / "nope.gguf")
    with pytest.raises(WattlmError, match="is not a file"):
        check_gguf(tmp_path)


def test_unsupported_version(tiny_gguf):
    data = bytearray(tiny_gguf.read_bytes())
    data[4:8] = (7).to_bytes(4, "little")
    tiny_gguf.write_bytes(bytes(data))
    with pytest.raises(WattlmError, match="unsupported GGUF version 7"):
        check_gguf(tiny_gguf)


def test_unknown_tensor_type(tiny_gguf):
    info = check_gguf(tiny_gguf)
    data = bytearray(tiny_gguf.read_bytes())
    # the last tensor entry ends with: u32 type, u64 offset; the header then pads to 32
    table_end = data.rfind(b"output_norm.weight") + len(b"output_norm.weight") + 4 + 8
    data[table_end : table_end + 4] = (999).to_bytes(4, "little")
    tiny_gguf.write_bytes(bytes(data))
    assert table_end + 12 <= info.data_offset
    with pytest.raises(WattlmError, match="unknown ggml type 999"):
        check_gguf(tiny_gguf)


def test_corrupted_headers_never_crash(tiny_gguf, tmp_path):
    """Random byte flips in the header give a GgufInfo or a WattlmError, nothing else."""
    good = tiny_gguf.read_bytes()
    header_end = check_gguf(tiny_gguf).data_offset
    rng = random.Random(0)
    path = tmp_path / "flip.gguf"
    outcomes = set()
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(4, header_end)] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            check_gguf(path)
            outcomes.add("ok")
        except WattlmError:
            outcomes.add("error")
    assert "error" in outcomes
