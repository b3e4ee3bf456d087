"""Complete, valid sample results for tests, docs and plug-ins.

The numbers are realistic for a 135M-parameter model on a 2-core CPU with the CPU-time
energy estimate, and deterministic: every call returns the same result. ``schema_version``
picks the format: 2 (default, what wattlm writes now: both energy views) or 1 (older files:
one energy figure per window); a higher number labels version-2 content with it.

Example:
    >>> from wattlm.report.result import validate_result
    >>> result = sample_bench_result()
    >>> [(r["backend"], r["batch_size"]) for r in result["runs"]]
    [('torch', 1), ('torch', 8), ('llamacpp', 1)]
    >>> validate_result(result)
"""

from __future__ import annotations

import copy
from typing import Any

from wattlm.measure.base import Measurement
from wattlm.measure.carbon import DEFAULT_GRID_INTENSITY, DEFAULT_SOURCE, J_PER_KWH
from wattlm.measure.stats import summarize

ESTIMATE_SOURCE = "estimate:cpu-tdp-v1"
_WATTS_PER_CORE = 7.5  # per busy core: the sample's power model
_IDLE_W = 4.2  # idle power a measured source subtracts
_CARBON = {"grid_intensity_g_per_kwh": DEFAULT_GRID_INTENSITY, "source": DEFAULT_SOURCE}

_CONFIG = {"model": "smollm2-135m", "data": "wiki-sample", "backends": ["torch", "llamacpp"],
           "batch_sizes": [1, 8], "prompt_tokens": 256, "new_tokens": 64, "warmup": 1,
           "repeats": 5, "threads": 2, "dtype": "float32", "device": "cpu", "meter": "auto",
           "cv_threshold": 0.1, "version": 1}  # fmt: skip
_MODEL = {"spec": "smollm2-135m", "format": "gguf", "task": "causal-lm",
          "path": "/home/user/.cache/wattlm/assets/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf",
          "architecture": "LlamaForCausalLM", "dtype": "float32",
          "fingerprint_sha256": "3f7a9c2e" * 8, "parameters": 134_515_008,
          "weight_bytes": 538_060_032, "disk_bytes": 98_362_432, "context_length": 8192}  # fmt: skip
_QUALITY = {"metric": "perplexity", "value": 17.53, "data": "wiki-sample", "split": "test",
            "tokens": 7600, "max_length": 512, "stride": 256, "backend": "torch",
            "dtype": "float32"}  # fmt: skip

# (backend, batch, dtype, prefill seconds per repeat, decode seconds per repeat)
_RUNS = [
    ("torch", 1, "float32", [0.452, 0.447, 0.461, 0.449, 0.455], [3.61, 3.55, 3.58, 3.66, 3.57]),
    ("torch", 8, "float32", [3.12, 3.08, 3.15, 3.10, 3.21], [5.79, 5.71, 5.84, 5.76, 5.92]),
    (
        "llamacpp",
        1,
        "q4_1",
        [0.214, 0.262, 0.209, 0.301, 0.221],
        [0.492, 0.488, 0.497, 0.49, 0.501],
    ),
]


def _stat(values: list[float], unit: str) -> dict[str, Any]:
    return summarize(values, unit=unit).to_dict()


_METHODS = {"total": "sample: energy as measured", "marginal": "sample: idle subtracted"}
_V2_KEYS = ("energy_marginal_j", "energy_band_j", "energy_marginal_band_j", "methods")


def _window(
    name: str, time_s: float, threads: int, source: str, tokens: int, version: int = 2
) -> dict[str, Any]:
    cpu_time_s = round(time_s * threads * 0.97, 6)
    energy_j = None if source == "unavailable" else round(cpu_time_s * _WATTS_PER_CORE, 6)
    idle_w = _IDLE_W if source in ("nvml", "rapl") else None
    marginal_j = energy_j
    if energy_j is not None and idle_w is not None:
        marginal_j = round(max(energy_j - idle_w * time_s, 0.0), 6)
    window = Measurement(
        name, time_s, energy_j, source, cpu_time_s, idle_w, {"tokens": tokens},
        energy_marginal_j=marginal_j, methods=dict(_METHODS),
    ).to_dict()  # fmt: skip
    if version < 2:
        for key in _V2_KEYS:
            del window[key]
    return window


def _phase(
    samples: list[dict[str, Any]], tokens: int, time_key: str, version: int = 2
) -> dict[str, Any]:
    times = [s["time_s"] for s in samples]
    phase = {
        time_key: _stat(times, "s"),
        "tokens_per_s": _stat([tokens / t for t in times], "tokens/s"),
    }
    if samples[0]["energy_j"] is None:
        none = {"energy_marginal_j_per_token": None} if version >= 2 else {}
        return {**phase, "energy_j_per_token": None, **none, "gco2e_per_token": None}
    j_per_token = [s["energy_j"] / tokens for s in samples]
    g_per_token = [j / J_PER_KWH * DEFAULT_GRID_INTENSITY for j in j_per_token]
    marginal = {}
    if version >= 2:
        per_token = [s["energy_marginal_j"] / tokens for s in samples]
        marginal = {"energy_marginal_j_per_token": _stat(per_token, "J/token")}
    return {
        **phase,
        "energy_j_per_token": _stat(j_per_token, "J/token"),
        **marginal,
        "gco2e_per_token": _stat(g_per_token, "gCO2e/token"),
    }


def _run(
    backend: str,
    batch: int,
    dtype: str,
    prefill_s: list[float],
    decode_s: list[float],
    source: str,
    version: int = 2,
) -> dict[str, Any]:
    threads, prompt_tokens, new_tokens = 2, 256, 64
    prefill_tokens, decode_tokens = batch * prompt_tokens, batch * (new_tokens - 1)
    prefill = [_window("prefill", t, threads, source, prefill_tokens, version) for t in prefill_s]
    decode = [_window("decode", t, threads, source, decode_tokens, version) for t in decode_s]
    details = {"library": "torch 2.13.0"} if backend == "torch" else {"library": "xllamacpp 0.2.1"}
    return {
        "backend": backend,
        "batch_size": batch,
        "threads": threads,
        "dtype": dtype,
        "device": "cpu",
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "warmup": 1,
        "repeats": len(prefill_s),
        "energy_source": source,
        "prefill": _phase(prefill, prefill_tokens, "time_to_first_token_s", version),
        "decode": _phase(decode, decode_tokens, "time_s", version),
        "backend_details": details,
        "samples": {"prefill": prefill, "decode": decode},
    }


def _energy(source: str, version: int = 2) -> dict[str, Any]:
    meter: dict[str, Any] = {"source": source}
    if source.startswith("estimate:"):
        meter.update(model=source.removeprefix("estimate:"), per_core_w=_WATTS_PER_CORE,
                     formula="energy_j = cpu_time_s * per_core_w", idle_subtracted=False)  # fmt: skip
    energy = {"source": source, "meter": meter, "idle_subtracted": source in ("nvml", "rapl")}
    if version >= 2:
        energy["views"] = dict(_METHODS)
    return energy


def _context() -> dict[str, Any]:
    """Shaped like :func:`wattlm.measure.context.collect_context`."""
    cpu = {"model_name": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "vendor": "GenuineIntel",
           "family": 6, "model": 143, "logical_cores": 2, "physical_cores": 1,
           "affinity_cores": 2, "flags": ["avx2", "avx512f", "avx512_bf16"], "machine": "x86_64"}  # fmt: skip
    return {
        "cpu": cpu, "threads": 2, "threads_from": "argument", "gpus": [],
        "ram_bytes": 25_769_803_776,
        "os": {"system": "Linux", "kernel": "6.1.0", "platform": "Linux-6.1.0-x86_64-with-glibc2.36"},
        "python": {"version": "3.11.9", "implementation": "CPython"},
        "libraries": {"torch": "2.13.0+cpu", "transformers": "4.57.1", "xllamacpp": "0.2.1"},
        "wattlm_version": "0.1.0", "hostname": "bench-host", "timestamp": "2026-11-21T10:00:00+00:00",
    }  # fmt: skip


def sample_bench_result(
    *, energy_source: str = ESTIMATE_SOURCE, schema_version: int = 2, **overrides: Any
) -> dict[str, Any]:
    """A valid ``kind: "bench"`` result: runs torch b1, torch b8 and llamacpp b1.

    ``energy_source`` labels every energy figure (``"unavailable"`` leaves them ``None``);
    ``overrides`` replace whole top-level keys, e.g. ``quality=None``.

    Example:
        >>> sample_bench_result(quality=None)["quality"] is None
        True
        >>> sample_bench_result(energy_source="unavailable")["runs"][0]["decode"]["energy_j_per_token"]
        >>> "energy_marginal_j_per_token" in sample_bench_result(schema_version=1)["runs"][0]["decode"]
        False
    """
    v = min(schema_version, 2)
    result: dict[str, Any] = {
        "schema_version": schema_version,
        "kind": "bench",
        "wattlm_version": "0.1.0",
        "created_utc": "2026-11-21T10:00:00Z",
        "config": copy.deepcopy(_CONFIG),
        "model": dict(_MODEL),
        "quality": dict(_QUALITY),
        "memory": {"peak_rss_bytes": 1_187_512_320, "weights_resident_bytes": 538_060_032},
        "energy": _energy(energy_source, v),
        "carbon": dict(_CARBON),
        "runs": [_run(*spec, source=energy_source, version=v) for spec in _RUNS],
        "notes": ["weights are the Q4_1 GGUF dequantized to float32"],
        "context": _context(),
    }
    result.update(overrides)
    return result


def sample_measure_result(
    *, energy_source: str = ESTIMATE_SOURCE, schema_version: int = 2, **overrides: Any
) -> dict[str, Any]:
    """A valid ``kind: "measure"`` result for ``python train.py`` (12.4 s, exit code 0).

    Example:
        >>> sample_measure_result()["measurement"]["energy_j"]
        180.42
    """
    v = min(schema_version, 2)
    measurement = _window("command", 12.4, 2, energy_source, 0, v)
    measurement.update(details={}, energy_j=None if energy_source == "unavailable" else 180.42)
    if v >= 2:
        idle = _IDLE_W * 12.4 if energy_source in ("nvml", "rapl") else 0.0
        marginal = None if energy_source == "unavailable" else round(180.42 - idle, 6)
        measurement["energy_marginal_j"] = marginal
    result: dict[str, Any] = {
        "schema_version": schema_version,
        "kind": "measure",
        "wattlm_version": "0.1.0",
        "created_utc": "2026-11-21T10:05:00Z",
        "command": ["python", "train.py"],
        "exit_code": 0,
        "measurement": measurement,
        "energy": _energy(energy_source, v),
        "carbon": dict(_CARBON),
        "context": _context(),
    }
    result.update(overrides)
    return result
