"""The one GGUF reader: check a file before anything loads it, describe what it holds, and
read its tensors.

Every part of wattlm that looks inside a GGUF file reads it here: loading a model
(:func:`~wattlm.models.load.load_model` checks the file first), the llama.cpp backend, the
exporter copying a tokenizer's metadata, and the search putting exported weights back into
a torch model (:mod:`wattlm.export.gguf_weights`).

:func:`check_gguf` walks the GGUF header (key/value metadata and tensor table) through a
read-only memory map and checks that every tensor's data lies inside the file, so a
missing, foreign, corrupt or truncated file fails here with one clear
:class:`~wattlm.errors.WattlmError` instead of deep inside llama.cpp or transformers.
Tensor data is never read: checking the 98 MB SmolLM2 file takes milliseconds. Long
metadata arrays (vocabularies) are skipped unless named in ``arrays=``;
:class:`GgufTensors` dequantizes tensors one at a time from a memory map.

The type tables come from the ``gguf`` package. ``gguf.GGUFReader`` is not used to parse:
it decodes every vocabulary string in Python (2 s for SmolLM2, 10 s for Gemma 3) and reports
a truncated file as a numpy reshape error.

Example:
    >>> info = check_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
    >>> info.architecture, info.file_type_name, info.parameter_count  # doctest: +SKIP
    ('llama', 'Q4_1', 134515008)
"""

from __future__ import annotations

import math
import mmap
import struct
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType
from gguf.quants import dequantize, quant_shape_to_byte_shape

from wattlm.errors import WattlmError

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_DIMS = 4  # GGML_MAX_DIMS
KEPT_ARRAY_ITEMS = 64  # longer metadata arrays (vocabularies) are counted, not kept

# GGUFValueType -> struct format of one scalar (STRING=8 and ARRAY=9 are handled apart)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"}
_SCALARS.update({10: "<Q", 11: "<q", 12: "<d"})
_STRING, _ARRAY = 8, 9


@dataclass
class GgufInfo:
    """What a checked GGUF file holds.

    Attributes:
        path: the file.
        size_bytes: file size.
        version: GGUF format version.
        architecture: ``general.architecture`` (``llama``, ``gemma3``…), or None.
        name: ``general.name``, or None.
        context_length: ``<arch>.context_length`` (training context), or None.
        vocab_size: ``<arch>.vocab_size``, else the length of ``tokenizer.ggml.tokens``.
        tensor_count: number of tensors.
        parameter_count: elements over all tensors (tied weights are stored once).
        file_type: ``general.file_type`` (llama.cpp's ``LLAMA_FTYPE``), or None.
        file_type_name: e.g. ``Q4_1``, ``Q4_K_M``, ``F16``; else the most common tensor type.
        tensor_types: tensor count per ggml type, e.g. ``{"Q4_1": 211, "F32": 61}``.
        data_offset: where tensor data starts.
        data_bytes: bytes of tensor data (from ``data_offset`` to the end of the last tensor).
        metadata: the scalar and short-array key/values (long arrays as ``<array of N>``,
            unless asked for in full).
        tensors: the tensor table, by name.
    """

    path: Path
    size_bytes: int
    version: int
    architecture: str | None
    name: str | None
    context_length: int | None
    vocab_size: int | None
    tensor_count: int
    parameter_count: int
    file_type: int | None
    file_type_name: str
    tensor_types: dict[str, int]
    data_offset: int
    data_bytes: int
    metadata: dict[str, Any] = field(repr=False, default_factory=dict)
    tensors: dict[str, GgufTensor] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the metadata and tensor tables)."""
        out = asdict(self)
        out["path"] = str(self.path)
        out.pop("metadata")
        out.pop("tensors")
        return out


class _Corrupt(Exception):
    """The header is not valid GGUF (message says why)."""


class _Short(Exception):
    """The header runs past the end of the file."""

    def __init__(self, need: int) -> None:
        super().__init__(need)
        self.need = need


class _Cursor:
    """Bounds-checked little-endian reads from a buffer."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf, self.pos, self.size = buf, 0, len(buf)

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Short(start + max(n, 0))
        self.pos += n
        return start

    def scalar(self, fmt: str) -> Any:
        return struct.unpack_from(fmt, self.buf, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("<Q")
        start = self.take(n)
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        for _ in range(count):
            self.take(self.scalar("<Q"))

    def value(self, vtype: int, full: bool = False) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise _Corrupt(f"unknown metadata value type {vtype}")
        itype, count = self.scalar("<I"), self.scalar("<Q")
        if itype == _ARRAY:
            raise _Corrupt("nested metadata arrays are not supported")
        if count <= KEPT_ARRAY_ITEMS or full:
            return [self.value(itype) for _ in range(count)]
        if itype == _STRING:
            self.skip_strings(count)
        elif itype in _SCALARS:
            self.take(count * struct.calcsize(_SCALARS[itype]))
        else:
            raise _Corrupt(f"unknown metadata array type {itype}")
        return _LongArray(count)


@dataclass(frozen=True)
class _LongArray:
    length: int

    def __repr__(self) -> str:
        return f"<array of {self.length}>"


@dataclass(frozen=True)
class GgufTensor:
    """One entry of the tensor table: ``shape`` in ggml order (fastest dimension first),
    ``offset`` from the start of the tensor data."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int


def _parse_header(
    buf: mmap.mmap, arrays: tuple[str, ...] = ()
) -> tuple[int, dict[str, Any], list[GgufTensor], int]:
    """Return ``(version, metadata, tensors, data_offset)``; raises _Short or _Corrupt.
    Arrays under the keys in ``arrays`` are kept in full, however long."""
    cur = _Cursor(buf)
    cur.take(4)  # magic, checked by the caller
    version = cur.scalar("<I")
    if version & 0xFFFF == 0:
        raise _Corrupt("it is a big-endian GGUF file, which is not supported")
    if version not in SUPPORTED_VERSIONS:
        raise _Corrupt(f"unsupported GGUF version {version} (supported: 2, 3)")
    # absurd counts (corruption) end in _Short: every entry consumes >= 12 bytes
    n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        meta[key] = cur.value(cur.scalar("<I"), full=key in arrays)
    tensors = [_read_tensor_info(cur) for _ in range(n_tensors)]
    alignment = meta.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _Corrupt(f"invalid general.alignment {alignment!r}")
    data_offset = -(-cur.pos // alignment) * alignment
    for t in tensors:
        if t.offset % alignment:
            raise _Corrupt(f"tensor {t.name!r} data offset {t.offset} is not {alignment}-aligned")
    return version, meta, tensors, data_offset


def _read_tensor_info(cur: _Cursor) -> GgufTensor:
    name = cur.string()
    n_dims = cur.scalar("<I")
    if not 1 <= n_dims <= MAX_DIMS:
        raise _Corrupt(f"tensor {name!r} has {n_dims} dimensions")
    shape = tuple(cur.scalar("<Q") for _ in range(n_dims))
    return GgufTensor(name, shape, cur.scalar("<I"), cur.scalar("<Q"))


def _elements(t: GgufTensor) -> int:
    n = 1
    for d in t.shape:
        n *= d
    return n


def _tensor_bytes(t: GgufTensor) -> int:
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(t.ggml_type)]
    except (ValueError, KeyError):
        raise _Corrupt(f"tensor {t.name!r} has unknown ggml type {t.ggml_type}") from None
    if t.shape[0] % block:
        raise _Corrupt(f"tensor {t.name!r} row length {t.shape[0]} is not a multiple of {block}")
    return _elements(t) // block * type_size


def _type_name(ggml_type: int) -> str:
    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return str(ggml_type)


def _file_type_name(file_type: Any, tensor_types: Counter) -> str:
    if isinstance(file_type, int):
        try:
            name = LlamaFileType(file_type).name
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    return tensor_types.most_common(1)[0][0] if tensor_types else "unknown"


def _fail(path: Path, what: str, hint: str | None = None) -> WattlmError:
    return WattlmError(
        f"{path} {what}", hint=hint or "fetch the file again, or pass a complete .gguf file"
    )


def check_gguf(path: str | Path, *, arrays: tuple[str, ...] = ()) -> GgufInfo:
    """Check that ``path`` is a complete, readable GGUF file and describe it.

    ``arrays``: metadata keys whose arrays are read in full into ``metadata`` (e.g.
    ``tokenizer.ggml.tokens``); other arrays longer than 64 items are only counted.

    Checks: the file exists and is readable, starts with the GGUF magic, has a supported
    version, a well-formed header (metadata, tensor table, alignment, known tensor types)
    and holds all tensor data (a truncated download is caught here).

    Raises:
        WattlmError: naming the file and what is wrong with it.

    Example:
        >>> check_gguf("no/such/model.gguf")
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: GGUF file not found: no/such/model.gguf (check the path)
    """
    path = Path(path)
    if not path.exists():
        raise WattlmError(f"GGUF file not found: {path}", hint="check the path")
    if not path.is_file():
        raise WattlmError(f"{path} is not a file", hint="pass the path of a .gguf file")
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            if size < 24:
                raise _fail(path, f"is not a GGUF file: only {size} bytes")
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as err:
        raise WattlmError(f"cannot read {path}: {err.strerror or err}") from None
    with buf:
        if buf[:4] != MAGIC:
            raise _fail(
                path,
                f"is not a GGUF file (it starts with {bytes(buf[:4])!r}, not {MAGIC!r})",
                hint="pass a .gguf file",
            )
        try:
            version, meta, tensors, data_offset = _parse_header(buf, tuple(arrays))
            sizes = [_tensor_bytes(t) for t in tensors]
        except _Short as short:
            raise _fail(
                path,
                f"is truncated or corrupt: its header runs past the end of the file "
                f"(needs at least {short.need} bytes, the file has {size})",
            ) from None
        except _Corrupt as err:
            raise _fail(path, f"is corrupt: {err}") from None
    return _describe(path, size, version, meta, tensors, sizes, data_offset)


def _describe(path, size, version, meta, tensors, sizes, data_offset) -> GgufInfo:
    names = Counter(t.name for t in tensors)
    dup = [n for n, c in names.items() if c > 1]
    if dup:
        raise _fail(path, f"is corrupt: duplicate tensor {dup[0]!r}")
    end = max(
        (data_offset + t.offset + n for t, n in zip(tensors, sizes, strict=True)),
        default=data_offset,
    )
    if end > size:
        raise _fail(path, f"is truncated: tensor data needs {end} bytes, the file has {size}")
    arch = meta.get("general.architecture")
    arch = arch if isinstance(arch, str) else None

    def arch_int(key: str) -> int | None:
        value = meta.get(f"{arch}.{key}") if arch else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    vocab = arch_int("vocab_size")
    if vocab is None:
        tokens = meta.get("tokenizer.ggml.tokens")
        vocab = len(tokens) if isinstance(tokens, list) else getattr(tokens, "length", None)
    tensor_types = Counter(_type_name(t.ggml_type) for t in tensors)
    file_type = meta.get("general.file_type")
    n_params = sum(_elements(t) for t in tensors)
    name = meta.get("general.name")
    return GgufInfo(
        path=path,
        size_bytes=size,
        version=version,
        architecture=arch,
        name=name if isinstance(name, str) else None,
        context_length=arch_int("context_length"),
        vocab_size=vocab,
        tensor_count=len(tensors),
        parameter_count=n_params,
        file_type=file_type if isinstance(file_type, int) else None,
        file_type_name=_file_type_name(file_type, tensor_types),
        tensor_types=dict(tensor_types.most_common()),
        data_offset=data_offset,
        data_bytes=end - data_offset,
        metadata={k: (repr(v) if isinstance(v, _LongArray) else v) for k, v in meta.items()},
        tensors={t.name: t for t in tensors},
    )


class GgufTensors:
    """The tensors of a checked GGUF file, dequantized to float32 one at a time on demand
    (``tensors[name]``, numpy/torch dimension order) from a read-only memory map.

    Example:
        >>> tensors = GgufTensors("model.gguf")  # doctest: +SKIP
        >>> tensors["output_norm.weight"].shape  # doctest: +SKIP
        (576,)
    """

    def __init__(self, path: str | Path) -> None:
        self.info = check_gguf(path)
        self._data = np.memmap(self.info.path, dtype=np.uint8, mode="r")

    def __contains__(self, name: object) -> bool:
        return name in self.info.tensors

    def __getitem__(self, name: str) -> np.ndarray:
        t = self.info.tensors.get(name)
        if t is None:
            raise WattlmError(f"{self.info.path} has no tensor {name}")
        qtype = GGMLQuantizationType(t.ggml_type)
        shape = tuple(reversed(t.shape))
        byte_shape = quant_shape_to_byte_shape(shape, qtype)
        start = self.info.data_offset + t.offset
        size = math.prod(byte_shape)
        raw = self._data[start : start + size].reshape(byte_shape)
        return dequantize(np.asarray(raw), qtype).reshape(shape)
