"""Model updates as Flower records: full weights, int8 deltas, or top-k deltas with error
feedback; and the bytes a record really takes once serialised.

- ``none``: the client's weights, float32 (what plain FedAvg sends);
- ``int8``: the delta ``θ_local − θ_global`` per tensor as int8 with one float32 scale
  ``max|Δ| / 127``: every element decodes within ``scale / 2`` of the true delta;
- ``topk``: the largest ``k = ceil(fraction · n)`` entries of ``Δ + residual`` per tensor
  (int32 positions, float32 values, sent exactly); what was left out becomes the next
  round's residual (error feedback, kept by the client).

Bytes are counted from the serialised records: the sum of ``deflate()`` over the record and
every object nested in it, the objects Flower transfers.

Example:
    >>> import numpy as np
    >>> base = {"w": np.zeros(4, np.float32)}
    >>> local = {"w": np.array([0.0, 1.0, -2.0, 0.5], np.float32)}
    >>> sent, _ = encode_update(local, base, "int8")
    >>> out = decode_update(from_record(to_record(sent)), base, "int8")
    >>> bool(np.abs(out["w"] - local["w"]).max() <= 2.0 / 127 / 2 + 1e-7)
    True
"""

from __future__ import annotations

import math

import numpy as np

Arrays = dict[str, np.ndarray]


def record_bytes(record) -> int:
    """Bytes of ``record`` (any Flower record or ``RecordDict``) serialised for transfer."""
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    return sum(len(obj.deflate()) for obj in get_all_nested_objects(record).values())


def to_record(arrays: Arrays):
    """An ``ArrayRecord`` holding ``arrays`` in key order."""
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})


def from_record(record) -> Arrays:
    """The numpy arrays of an ``ArrayRecord``."""
    return {k: v.numpy() for k, v in record.items()}


def quantize_int8(delta: np.ndarray) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor int8: ``(q, scale)`` with ``q * scale ≈ delta``.

    Example:
        >>> q, s = quantize_int8(np.array([1.27, -0.5], np.float32))
        >>> q.tolist(), round(s, 4)
        ([127, -50], 0.01)
    """
    peak = float(np.abs(delta).max()) if delta.size else 0.0
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.rint(delta / scale), -127, 127).astype(np.int8)
    return q, scale


def top_k(values: np.ndarray, fraction: float) -> np.ndarray:
    """Flat positions of the ``ceil(fraction · n)`` largest-magnitude entries, ascending."""
    flat = values.reshape(-1)
    k = max(1, math.ceil(fraction * flat.size))
    if k >= flat.size:
        return np.arange(flat.size, dtype=np.int32)
    idx = np.argpartition(np.abs(flat), flat.size - k)[flat.size - k :]
    return np.sort(idx).astype(np.int32)


def encode_update(
    local: Arrays,
    base: Arrays,
    method: str,
    *,
    fraction: float = 0.01,
    residual: Arrays | None = None,
):
    """The arrays a client sends (put them in a record with :func:`to_record`), and the new
    error-feedback residual (``topk`` only).

    ``base`` is the global model the client received; ``residual`` what earlier rounds
    left out (``topk``).
    """
    if method == "none":
        return {k: v.astype(np.float32) for k, v in local.items()}, None
    if method == "int8":
        out, scales = {}, []
        for k in local:
            q, s = quantize_int8((local[k] - base[k]).astype(np.float32))
            out[k] = q
            scales.append(s)
        out["__scales__"] = np.asarray(scales, np.float32)
        return out, None
    if method == "topk":
        out, new_residual = {}, {}
        for k in local:
            full = (local[k] - base[k]).astype(np.float32)
            if residual and k in residual:
                full = full + residual[k]
            idx = top_k(full, fraction)
            vals = full.reshape(-1)[idx]
            out[f"{k}::idx"] = idx
            out[f"{k}::val"] = vals.astype(np.float32)
            rest = full.reshape(-1).copy()
            rest[idx] = 0.0
            new_residual[k] = rest.reshape(full.shape)
        return out, new_residual
    raise ValueError(f"unknown compression {method!r}")


def decode_update(sent: Arrays, base: Arrays, method: str) -> Arrays:
    """The client's weights as the server reconstructs them (``base + decoded delta``) from
    the arrays it received (:func:`from_record`).

    Raises ``ValueError`` naming the problem when the arrays do not fit ``base``.
    """
    got = dict(sent)
    if method == "none":
        _check_keys(set(got), set(base))
        return got
    if method == "int8":
        scales = got.pop("__scales__", None)
        _check_keys(set(got), set(base))
        if scales is None or scales.shape != (len(base),):
            raise ValueError("int8 update without one scale per tensor")
        for k, b in base.items():
            if got[k].shape != b.shape:
                raise ValueError(f"tensor {k!r} has shape {got[k].shape}, the model's is {b.shape}")
        return {
            k: base[k] + got[k].astype(np.float32) * float(scales[i]) for i, k in enumerate(base)
        }
    if method == "topk":
        _check_keys({k.rsplit("::", 1)[0] for k in got}, set(base))
        out = {}
        for k, b in base.items():
            idx, vals = got.get(f"{k}::idx"), got.get(f"{k}::val")
            if idx is None or vals is None or idx.shape != vals.shape:
                raise ValueError(f"top-k update of {k!r} lacks matching positions and values")
            if idx.size and (idx.min() < 0 or idx.max() >= b.size):
                raise ValueError(f"top-k positions of {k!r} fall outside its {b.size} entries")
            flat = b.reshape(-1).astype(np.float32).copy()
            flat[idx] += vals
            out[k] = flat.reshape(b.shape)
        return out
    raise ValueError(f"unknown compression {method!r}")


def _check_keys(got: set[str], want: set[str]) -> None:
    if got != want:
        extra, missing = sorted(got - want), sorted(want - got)
        raise ValueError(
            f"update tensors differ from the model's (extra {extra}, missing {missing})"
        )


def check_update(arrays: Arrays, base: Arrays) -> str | None:
    """Why an update must not be averaged in (wrong shape, NaN/inf), or ``None`` if fine.

    Example:
        >>> base = {"w": np.zeros(2, np.float32)}
        >>> check_update({"w": np.array([1.0, np.nan], np.float32)}, base)
        "tensor 'w' has non-finite values"
        >>> check_update({"w": np.zeros(3, np.float32)}, base)
        "tensor 'w' has shape (3,), the model's is (2,)"
    """
    for k, b in base.items():
        a = arrays.get(k)
        if a is None:
            return f"tensor {k!r} is missing"
        if a.shape != b.shape:
            return f"tensor {k!r} has shape {a.shape}, the model's is {b.shape}"
        if not np.isfinite(a).all():
            return f"tensor {k!r} has non-finite values"
    return None
