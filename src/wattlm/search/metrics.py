"""A trial's figures, taken from its bench result: each one a median with its 95% interval.

The objective is one of:

| objective | figure | unit |
|---|---|---|
| ``decode-energy`` | ``decode.energy_j_per_token``: energy per generated token | J/token |
| ``prefill-energy`` | ``prefill.energy_j_per_token``: energy per prompt token | J/token |
| ``request-energy`` | (prefill + decode window energy) / batch: one request of ``prompt_tokens`` in and ``new_tokens`` out | J/request |

Latency is the time between two generated tokens *of one sequence*: decode window time /
(new tokens − 1), so a batch of 8 that decodes faster in total may still be slower per user.

Every energy figure is read in one **energy view** (``energy_view``): ``total``
(idle-inclusive, ``energy_j_per_token``/``energy_j``, the default) or ``marginal``
(``energy_marginal_j_per_token``/``energy_marginal_j``); the metric keys stay the same.
A result without the view (schema 1 has no marginal figures) gives ``null`` energy.

Quality is the one the configuration is served with
(:func:`~wattlm.bench.served_quality.served_entry`): the runtime's own perplexity when it
gives log-probabilities (llama.cpp, ONNX Runtime), torch's otherwise; ``kl_mean`` and
``top1_agreement`` against the baseline's distribution when the search measured them.
"""

from __future__ import annotations

from typing import Any

from wattlm.bench.served_quality import served_entry
from wattlm.measure.stats import summarize
from wattlm.measure.views import check_view, view_key
from wattlm.report.records import BenchResult, OptimizeMetrics

OBJECTIVES: dict[str, tuple[str, str]] = {
    "decode-energy": ("decode.energy_j_per_token", "J/token"),
    "prefill-energy": ("prefill.energy_j_per_token", "J/token"),
    "request-energy": ("request.energy_j", "J/request"),
}
#: every key of a trial's ``metrics`` (``null`` when not measured)
METRIC_KEYS = (
    "perplexity",
    "perplexity_increase",
    "kl_mean",
    "top1_agreement",
    "objective",
    "energy_j_per_token",
    "prefill_energy_j_per_token",
    "request_energy_j",
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "latency_ms_per_token",
    "time_to_first_token_s",
    "peak_rss_bytes",
    "weight_bytes",
    "speculative_acceptance",
)


def empty_metrics() -> OptimizeMetrics:
    return dict.fromkeys(METRIC_KEYS)  # type: ignore[return-value]


def stat_entry(stat: dict[str, Any] | None) -> dict[str, Any] | None:
    """A bench stat as the optimize record writes it: ``{"median", "ci95": [lo, hi], …}``."""
    if stat is None:
        return None
    lo, hi = stat.get("ci95_low"), stat.get("ci95_high")
    return {
        "median": stat["median"],
        "ci95": [lo, hi] if lo is not None and hi is not None else None,
        "ci_method": stat["ci_method"],
        "n": stat["n"],
        "noisy": stat["noisy"],
        "unit": stat["unit"],
    }


def interval(entry: dict[str, Any]) -> tuple[float, float]:
    """The 95% interval of a stat entry, or its median twice when there is none."""
    ci = entry.get("ci95")
    return (ci[0], ci[1]) if ci else (entry["median"], entry["median"])


def metrics_from_result(
    result: BenchResult,
    *,
    objective: str,
    weight_bytes: int | None,
    energy_view: str = "total",
) -> OptimizeMetrics:
    """The ``metrics`` of a trial from a one-run bench result, energy in ``energy_view``.

    Example:
        >>> from wattlm.testing.results import sample_bench_result
        >>> r = sample_bench_result()
        >>> r["runs"] = r["runs"][:1]
        >>> m = metrics_from_result(r, objective="decode-energy", weight_bytes=10)
        >>> m["objective"] == m["energy_j_per_token"]
        True
        >>> marginal = metrics_from_result(r, objective="decode-energy", weight_bytes=10,
        ...                                energy_view="marginal")
        >>> marginal["objective"]["median"] == r["runs"][0]["decode"]["energy_marginal_j_per_token"]["median"]
        True
    """
    per_token, window = (
        view_key(k, check_view(energy_view)) for k in ("energy_j_per_token", "energy_j")
    )
    run = result["runs"][0]
    cv = result.get("config", {}).get("cv_threshold", 0.10)
    batch, new = run["batch_size"], run["new_tokens"]
    dec, pre = run["decode"], run["prefill"]
    samples = run["samples"]
    latency = summarize(
        [w["time_s"] / (new - 1) * 1000.0 for w in samples["decode"]],
        cv_threshold=cv,
        unit="ms/token",
    ).to_dict()
    energies = [
        (p.get(window), d.get(window))
        for p, d in zip(samples["prefill"], samples["decode"], strict=True)
    ]
    request = None
    if energies and all(p is not None and d is not None for p, d in energies):
        request = summarize(
            [(p + d) / batch for p, d in energies], cv_threshold=cv, unit="J/request"
        ).to_dict()
    quality = served_entry(result, run["backend"])
    fidelity = (quality or {}).get("fidelity") or {}
    metrics = empty_metrics()
    metrics.update(
        perplexity=quality["value"] if quality else None,
        kl_mean=fidelity.get("kl_mean"),
        top1_agreement=fidelity.get("top1_agreement"),
        energy_j_per_token=stat_entry(dec.get(per_token)),
        prefill_energy_j_per_token=stat_entry(pre.get(per_token)),
        request_energy_j=stat_entry(request),
        decode_tokens_per_s=stat_entry(dec["tokens_per_s"]),
        prefill_tokens_per_s=stat_entry(pre["tokens_per_s"]),
        latency_ms_per_token=stat_entry(latency),
        time_to_first_token_s=stat_entry(pre["time_to_first_token_s"]),
        peak_rss_bytes=result.get("memory", {}).get("peak_rss_bytes"),
        weight_bytes=weight_bytes,
    )
    speculative = run.get("backend_details", {}).get("speculative") or {}
    metrics["speculative_acceptance"] = speculative.get("acceptance_rate")
    key = {
        "decode-energy": "energy_j_per_token",
        "prefill-energy": "prefill_energy_j_per_token",
        "request-energy": "request_energy_j",
    }[objective]
    metrics["objective"] = metrics[key]
    return metrics
