"""``Candidate``: one point of the search space, resolved to what actually runs.

A candidate is a compression method with its parameter values (already turned into recipe
stages), a backend (with the backend's own weight format, ``qtype``: llama.cpp's GGUF
type, ONNX Runtime's ``fp32``/``int4-b32-acc4``…), a batch size and a thread count. Some
combinations are mapped or refused, always the same way and with a stated reason:

- llama.cpp and ONNX Runtime quantize the weights themselves (``qtype``), so torch-side
  precision stages (``cast``, ``int8-weight``, ``int4-weight``, ``int8-dynamic``) are
  dropped before their export; e.g. *int4-weight + llama.cpp q4_0* runs exactly *none +
  llama.cpp q4_0* (the search notices and reuses that trial instead of measuring it
  twice);
- low-rank factorized layers have no place in llama.cpp's graph: refused.

A candidate also carries the backend's runtime settings (``runtime``: llama.cpp's
``flash_attn``, ``kv_cache``, ``n_batch``, ``n_ubatch``, ``speculative``), only those not
at the runtime's default; a record written before they existed loads with none, which is
what ran then.

Each backend class declares its own rules (``replaces_stages``, ``refuses_stages``,
``weight_option()``, ``runtime_settings`` in :mod:`wattlm.bench.backends`); this module
only applies them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from wattlm.bench.backends import BACKEND_LABELS
from wattlm.bench.backends.runtime_settings import check_settings


def _backend(name: str) -> Any:
    """The backend class: it says which stages it replaces or refuses, and whether it has
    weight formats of its own."""
    from wattlm.bench.backends import backend_class

    return backend_class(name)


def canonical(obj: Any) -> str:
    """Compact, key-sorted JSON: equal objects give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Candidate:
    """A fully resolved configuration to measure.

    Example:
        >>> c = Candidate("int4-weight", {"group_size": 32},
        ...               ({"method": "int4-weight", "group_size": 32},), "llamacpp", "q4_0", 8, 2)
        >>> c.effective_stages(), c.label()
        ([], 'none → llama.cpp q4_0 · batch 8 · 2 threads')
        >>> o = Candidate("none", {}, (), "onnxruntime", "int4-b32-acc4", 8, 2)
        >>> o.params()["weights"]
        'int4-b32-acc4'
        >>> f = Candidate("none", {}, (), "llamacpp", "q8_0", 8, 2, {"flash_attn": "on", "n_batch": 2048})
        >>> f.runtime, f.label()
        ({'flash_attn': 'on'}, 'none → llama.cpp q8_0 flash_attn=on · batch 8 · 2 threads')
    """

    method: str
    method_params: dict[str, Any] = field(default_factory=dict)
    stages: tuple[dict[str, Any], ...] = ()
    backend: str = "torch"
    qtype: str | None = None
    batch_size: int = 1
    threads: int = 1
    runtime: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # canonical, checked, default-valued settings dropped: equal runs, equal candidates
        declared = _backend(self.backend).runtime_settings
        settings = check_settings(declared, self.runtime, f"backend {self.backend}")
        settings = _backend(self.backend).same_run(settings)
        object.__setattr__(self, "runtime", settings)

    def effective_stages(self) -> list[dict[str, Any]]:
        """The stages actually applied (a backend quantizing by its own weight format drops
        torch-side precision stages)."""
        replaced = _backend(self.backend).replaces_stages
        return [dict(s) for s in self.stages if s["method"] not in replaced]

    def incompatible(self) -> str | None:
        """Why this combination cannot run, or ``None``."""
        cls = _backend(self.backend)
        return cls.incompatible({s["method"] for s in self.stages}) or cls.runtime_problem(
            self.runtime
        )

    def key(self) -> str:
        """Identity of what runs: two candidates with equal keys measure the same thing."""
        parts: list[Any] = [
            self.effective_stages(),
            self.backend,
            self.qtype,
            self.batch_size,
            self.threads,
        ]
        if self.runtime:  # runtime defaults keep the key records had before settings existed
            parts.append(self.runtime)
        return canonical(parts)

    def weights_key(self) -> str:
        """Identity of what quality depends on: the weights, and the runtime settings that
        change what the model computes (e.g. a quantized KV cache); nothing else. A
        backend's own weight format is named with the backend: ONNX Runtime's and
        OpenVINO's ``fp32`` are different computations, scored each on its own runtime."""
        cls = _backend(self.backend)
        qtype = f"{self.backend}:{self.qtype}" if cls.weight_option() else None
        affecting = {s.name for s in cls.runtime_settings if s.affects_quality}
        runtime = {k: v for k, v in self.runtime.items() if k in affecting}
        if runtime:  # default settings keep the key records had before settings existed
            return canonical([self.effective_stages(), qtype, runtime])
        return canonical([self.effective_stages(), qtype])

    def params(self) -> dict[str, Any]:
        """The choices as a flat, readable dict (the record's ``params``)."""
        out: dict[str, Any] = {"method": self.method, **self.method_params}
        out["backend"] = self.backend
        option = _backend(self.backend).weight_option()
        if option:
            out[option] = self.qtype
        out.update(self.runtime)
        out.update(batch_size=self.batch_size, threads=self.threads)
        return out

    def label(self) -> str:
        """Short human description, e.g. ``int4-weight g32 → torch · batch 8 · 2 threads``."""
        effective = self.effective_stages()
        method, params = self.method, self.method_params
        if len(effective) < len(self.stages):  # the backend dropped precision stages: say so
            method = "+".join(s["method"] for s in effective) or "none"
            used = [v for s in effective for v in s.values()]
            params = {k: v for k, v in params.items() if v in used}
        extra = " ".join(_short(k, v) for k, v in params.items())
        method = f"{method} {extra}".strip()
        backend = BACKEND_LABELS.get(self.backend, self.backend)
        if _backend(self.backend).weight_option():
            backend += f" {self.qtype}"
        if self.runtime:  # non-default runtime settings only
            backend += " " + " ".join(f"{k}={v}" for k, v in self.runtime.items())
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{method} → {backend} · batch {self.batch_size} · {threads}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "method_params": dict(self.method_params),
            "stages": [dict(s) for s in self.stages],
            "backend": self.backend,
            "qtype": self.qtype,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "runtime": dict(self.runtime),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(
            method=data["method"],
            method_params=dict(data.get("method_params", {})),
            stages=tuple(dict(s) for s in data.get("stages", ())),
            backend=data["backend"],
            qtype=data.get("qtype"),
            batch_size=int(data["batch_size"]),
            threads=int(data["threads"]),
            runtime=dict(data.get("runtime") or {}),
        )


def baseline_candidate(threads: int) -> Candidate:
    """The reference every trial is compared with: the float model on torch, batch 1."""
    return Candidate("none", {}, (), "torch", None, 1, threads)


def _short(name: str, value: Any) -> str:
    abbreviations = {"group_size": "g", "ratio": "r", "sparsity": "s", "rank_ratio": "rank "}
    if name in abbreviations:
        return f"{abbreviations[name]}{value}"
    return f"{name}={value}"
