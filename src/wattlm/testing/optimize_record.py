"""A realistic, deterministic ``optimize.json`` record for tests, docs and report previews.

The trials are shaped like those ``wattlm optimize`` writes for SmolLM2-135M on a 2-core CPU
with the CPU-time energy estimate: an fp32 baseline, casts and quantizations at batch 1 and 8,
llama.cpp GGUF variants, over-budget (infeasible) trials, one far off-scale, one failed
trial, one screened-only trial, two ties, and the llama.cpp default as the peer. The
Pareto front is computed from the numbers, so the record is self-consistent.

Example:
    >>> record = sample_optimize_record()
    >>> record["recommended"], record["pareto"], record["ties"]
    (10, [1, 4, 12, 10], [[4, 9], [10, 12]])
    >>> [t["number"] for t in record["trials"] if not t["feasible"]]
    [5, 6, 7, 11]
"""

from __future__ import annotations

import copy
from typing import Any

ESTIMATE_SOURCE = "estimate:cpu-tdp-v1"
_BASELINE_PPL = 17.50
_MAX_INCREASE = 0.02
_WATTS = 7.5 * 0.97  # the sample's per-busy-core power model, as in testing/results.py
_BF16 = {"method": "cast", "dtype": "bfloat16"}
_INT4 = {"method": "int4-weight", "group_size": 32}

# number, label, stages, params, backend, batch, threads, stage, perplexity,
# decode tokens/s (None: failed), CI half-width (relative)
_TRIALS: list[tuple[Any, ...]] = [
    (0, "fp32 (baseline)", [], {}, "torch", 1, 2, "full", 17.50, 17.0, 0.02),
    (1, "bf16", [_BF16], {"dtype": "bfloat16"}, "torch", 1, 2, "full", 17.48, 27.0, 0.02),
    (2, "bf16 + int8-weight, batch 8", [_BF16, {"method": "int8-weight"}],
     {"dtype": "bfloat16", "quant": "int8-weight"}, "torch", 8, 2, "screen", 17.61, 116.0, 0.05),
    (3, "bf16 + int4 g32", [_BF16, _INT4], {"dtype": "bfloat16", "quant": "int4-weight",
     "group_size": 32}, "torch", 1, 2, "full", 17.51, 45.0, 0.02),
    (4, "bf16 + int4 g32, batch 8", [_BF16, _INT4], {"dtype": "bfloat16",
     "quant": "int4-weight", "group_size": 32}, "torch", 8, 2, "full", 17.51, 175.0, 0.025),
    (5, "bf16 + int8-dynamic, batch 8", [_BF16, {"method": "int8-dynamic"}],
     {"dtype": "bfloat16", "quant": "int8-dynamic"}, "torch", 8, 2, "screen", 18.13, 67.0, 0.05),
    (6, "magnitude 30% + int4 g32, batch 8",
     [{"method": "magnitude-prune", "sparsity": 0.3}, _BF16, _INT4],
     {"prune": "magnitude", "sparsity": 0.3, "quant": "int4-weight"}, "torch", 8, 2, "screen",
     26.4, 175.0, 0.05),
    (7, "wanda 50%", [{"method": "wanda", "sparsity": 0.5}],
     {"prune": "wanda", "sparsity": 0.5}, "torch", 1, 2, "screen", 488.0, 17.2, 0.05),
    (8, "llama.cpp q4_0", [{"method": "gguf-export", "type": "q4_0"}], {"gguf_type": "q4_0"},
     "llamacpp", 1, 2, "full", 17.66, 138.0, 0.02),
    (9, "bf16 + int4 g32, batch 8, 1 thread", [_BF16, _INT4], {"dtype": "bfloat16",
     "quant": "int4-weight", "group_size": 32}, "torch", 8, 1, "full", 17.51, 86.0, 0.03),
    (10, "prune-ffn 10% + int4 g32, batch 8",
     [{"method": "prune-ffn", "ratio": 0.1}, _BF16, _INT4],
     {"prune": "ffn", "ratio": 0.1, "quant": "int4-weight", "group_size": 32}, "torch", 8, 2,
     "full", 17.80, 207.0, 0.03),
    (11, "onnxruntime int8, batch 8", [{"method": "int8-dynamic"}],
     {"backend": "onnxruntime", "quant": "int8-dynamic"}, "onnxruntime", 8, 2, "screen",
     None, None, 0.0),
    (12, "llama.cpp q4_0, batch 8", [{"method": "gguf-export", "type": "q4_0"}],
     {"gguf_type": "q4_0"}, "llamacpp", 8, 2, "full", 17.66, 199.0, 0.04),
]  # fmt: skip
_ERROR = (
    "onnxruntime: export failed: unsupported operator 'aten::_weight_int4pack_mm_for_cpu' "
    "<in layer model.layers.0.mlp>"
)
_TIES = [[4, 9], [10, 12]]
_CONFIG = {"model": "smollm2-135m", "data": "wiki-sample", "budget": "2%",
           "objective": "decode-energy", "sampler": "nsga2", "n_trials": 13, "time_budget_s": 900,
           "backends": ["torch", "llamacpp", "onnxruntime"], "batch_sizes": [1, 8],
           "threads": [1, 2], "seed": 0, "version": 1}  # fmt: skip
_BUDGET = {"metric": "perplexity", "baseline": _BASELINE_PPL, "max_increase": _MAX_INCREASE,
           "limit": round(_BASELINE_PPL * (1 + _MAX_INCREASE), 4), "tokens": 7600}  # fmt: skip


def _stat(median: float, rel: float, digits: int = 4) -> dict[str, Any]:
    lo, hi = median * (1 - rel), median * (1 + rel)
    return {"median": median, "ci95": [round(lo, digits), round(hi, digits)]}


def _metrics(perplexity: float | None, tokens_per_s: float | None, rel: float, threads: int,
             weight_bytes: int) -> dict[str, Any]:  # fmt: skip
    if tokens_per_s is None:
        keys = ("perplexity", "perplexity_increase", "energy_j_per_token", "decode_tokens_per_s")
        keys += ("prefill_tokens_per_s", "latency_ms_per_token", "peak_rss_bytes", "weight_bytes")
        return dict.fromkeys(keys)
    j_per_token = round(_WATTS * threads / tokens_per_s, 5)
    return {
        "perplexity": perplexity,
        "perplexity_increase": round(perplexity / _BASELINE_PPL - 1, 6),
        "energy_j_per_token": _stat(j_per_token, rel, 5),
        "decode_tokens_per_s": _stat(tokens_per_s, rel, 1),
        "prefill_tokens_per_s": _stat(round(tokens_per_s * 9.5, 1), rel, 1),
        "latency_ms_per_token": _stat(round(1000 / tokens_per_s, 2), rel, 2),
        "peak_rss_bytes": weight_bytes * 2 + 310_000_000,
        "weight_bytes": weight_bytes,
    }


def _weight_bytes(stages: list[dict[str, Any]], backend: str) -> int:
    from wattlm.bench.backends import backend_class

    methods = {s["method"] for s in stages}
    if backend_class(backend).runs_gguf:  # a GGUF file at its own type
        return 91_000_000
    if "int4-weight" in methods:
        return 123_000_000
    if "int8-weight" in methods or "int8-dynamic" in methods:
        return 164_000_000
    return 269_000_000 if "cast" in methods else 538_060_032


def _trial(spec: tuple[Any, ...]) -> dict[str, Any]:
    number, label, stages, params, backend, batch, threads, stage, ppl, tps, rel = spec
    failed = tps is None
    feasible = not failed and ppl <= _BASELINE_PPL * (1 + _MAX_INCREASE)
    return {
        "number": number,
        "label": label,
        "params": {**params, "backend": backend, "batch_size": batch, "threads": threads},
        "stages": copy.deepcopy(stages),
        "backend": backend,
        "batch_size": batch,
        "threads": threads,
        "state": "failed" if failed else "complete" if feasible else "infeasible",
        "feasible": feasible,
        "stage": stage,
        "error": _ERROR if failed else None,
        "metrics": _metrics(ppl, tps, rel, threads, _weight_bytes(stages, backend)),
        "pareto": False,
        "duration_s": 4.1 if failed else (95.0 if stage == "full" else 31.0) + (number or 0),
        "result_path": None if failed else f"trials/{number}/result.json",
    }


def _energy(trial: dict[str, Any]) -> float:
    return trial["metrics"]["energy_j_per_token"]["median"]


def _front(trials: list[dict[str, Any]]) -> list[int]:
    """Feasible trials no other feasible trial beats on both perplexity and energy."""
    pts = [t for t in trials if t["feasible"] and t["metrics"]["energy_j_per_token"]]

    def dominated(t: dict[str, Any]) -> bool:
        ppl, joules = t["metrics"]["perplexity"], _energy(t)
        return any(
            o["metrics"]["perplexity"] <= ppl
            and _energy(o) <= joules
            and (o["metrics"]["perplexity"] < ppl or _energy(o) < joules)
            for o in pts
        )

    front = [t for t in pts if not dominated(t)]
    return [t["number"] for t in sorted(front, key=lambda t: t["metrics"]["perplexity"])]


def _context() -> dict[str, Any]:
    """Shaped like :func:`wattlm.measure.context.collect_context`."""
    from wattlm.testing.results import _context

    return _context()


def sample_optimize_record(**overrides: Any) -> dict[str, Any]:
    """A complete ``kind: "optimize"`` record; ``overrides`` replace whole top-level keys.

    Example:
        >>> rec = sample_optimize_record(recommended=None)
        >>> rec["recommended"] is None, rec["budget"]["limit"]
        (True, 17.85)
    """
    trials = [_trial(spec) for spec in _TRIALS]
    front = _front(trials)
    for trial in trials:
        trial["pareto"] = trial["number"] in front
    by_number = {t["number"]: t for t in trials}
    feasible = [t for t in trials if t["feasible"]]
    best = min(feasible, key=_energy)
    peer = _trial((None, "llama.cpp default (Q4_1 file, batch 1)", [], {"gguf_type": "q4_1"},
                   "llamacpp", 1, 2, "full", 17.56, 131.0, 0.02))  # fmt: skip
    peer["result_path"] = "peer/result.json"
    rec_metrics = copy.deepcopy(best["metrics"])
    rec_metrics["energy_j_per_token"] = _stat(round(_energy(best) * 1.01, 5), 0.025, 5)
    record: dict[str, Any] = {
        "schema_version": 1,
        "kind": "optimize",
        "wattlm_version": "0.1.0",
        "created_utc": "2026-11-22T09:30:00Z",
        "config": copy.deepcopy(_CONFIG),
        "model": {"spec": "smollm2-135m", "parameters": 134_515_008, "weight_bytes": 538_060_032},
        "objective": {
            "name": "decode-energy",
            "metric": "decode.energy_j_per_token",
            "unit": "J/token",
            "batch_note": "energy of the decode phase divided by every generated token of the "
            "batch: a batch of 8 streams shares one pass over the weights",
        },
        "budget": dict(_BUDGET),
        "energy_source": ESTIMATE_SOURCE,
        "trials": trials,
        "baseline": 0,
        "peer": peer,
        "pareto": front,
        "ties": copy.deepcopy(_TIES),
        "recommended": best["number"],
        "recommended_model": {
            "path": "recommended/model",
            "result_path": "recommended/result.json",
            "metrics": rec_metrics,
        },
        "ratios": {
            "tokens_per_joule_vs_baseline": round(_energy(by_number[0]) / _energy(best), 3),
            "tokens_per_joule_vs_peer": round(_energy(peer) / _energy(best), 3),
        },
        "context": _context(),
        "notes": [
            "Screening measured perplexity on 2048 tokens and decode with 2 repeats; "
            "candidates were re-measured in full (7600 tokens, 5 repeats).",
            "Weights come from a Q4_1 GGUF dequantized to float: 4-bit methods on its grid "
            "look nearly free.",
        ],
        "elapsed_s": 842.5,
    }
    record.update(overrides)
    return record
