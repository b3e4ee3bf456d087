"""The screen stage's fidelity ladder: quality first, then a short bench that stops early.

A screened trial is measured in rungs, each cheaper than what it can spare:

1. **Quality first.** When the trial's weights have no perplexity yet, they are scored on
   the screen's text slice *before* any energy is measured, on the runtime that serves
   them (llama.cpp's own log-probabilities for GGUF; torch for torch; a backend that runs
   an export of its own, ONNX Runtime, is scored by the bench after its export), with
   KL divergence and top-1 agreement against the baseline. A perplexity above
   ``quality_limit`` (the baseline's screen perplexity × (1 + budget + margin): clearly
   outside the budget, even allowing for the slice's difference from the full text) ends
   the trial there: ``early_stop`` = :data:`QUALITY_SKIP`, no energy figure. Scoring
   itself stops early (:class:`PairedRung`) once the windows scored so far show the
   weights clearly over that limit, compared token by token with the baseline on the same
   tokens; the perplexity recorded is then a labelled estimate (:data:`PAIRED_METHOD`). The full
   stage scores quality first the same way (without torch's cross-check of a runtime's
   own figure: ``wattlm bench`` gives that), so its bench measures energy only.
2. **Early stop of clear losers.** The bench runs under a
   :class:`~wattlm.bench.phases.StopRule`: after each measured repeat, a decode energy per
   token above ``stop_above`` (a factor × the best feasible screened figure so far) stops
   it; the record keeps the figures it had and says ``pruned: dominated after N
   repeat(s)``.
3. **Adaptive repeats.** Otherwise repeats go on until the 95% interval of decode J/token
   is within the stage's ``rel_width`` of its median (after ``min_repeats``), or the cap.

Both evaluators (the real :class:`~wattlm.search.evaluate.BenchEvaluator` and the
synthetic one) use these helpers, so the search sees the same outcomes from both.
"""

from __future__ import annotations

import time
from typing import Any

#: ``early_stop`` of a trial whose perplexity was clearly outside the budget
QUALITY_SKIP = "energy not measured: outside the quality budget"
#: ``method`` of a perplexity estimated by :class:`PairedRung` (scoring stopped early)
PAIRED_METHOD = (
    "estimate: the baseline's screen perplexity x exp(mean paired NLL difference) on the "
    "tokens scored before the quality-first rung stopped"
)


class PairedRung:
    """Stops quality scoring once the weights are clearly over the screen's limit.

    It watches each reference window as the runtime scores it
    (:class:`~wattlm.bench.fidelity.SharedWindows`): the per-token differences
    ``d = NLL_trial - NLL_baseline`` on the same tokens, with the same left context. With
    ``n >= min_tokens`` of them, mean ``m`` and standard error ``se``, it raises
    :class:`~wattlm.bench.fidelity.PairedStop` when ``m - z * se > log(limit_ratio)``:
    even ``z`` standard errors below its estimate, the perplexity ratio to the baseline
    exceeds the limit's. ``z = 4`` covers the repeated looks and the correlation between
    neighbouring tokens' losses. A configuration near the budget is never stopped by it;
    it is scored in full.

    Example:
        >>> import torch
        >>> rung = PairedRung(limit_ratio=1.03, min_tokens=4)
        >>> base = torch.full((8,), 3.0)
        >>> rung(base + 0.01, base)  # +1%: carry on
        >>> worse = base + torch.tensor([.3, .25, .35, .3, .3, .28, .32, .3])  # +35%
        >>> try:
        ...     PairedRung(limit_ratio=1.03, min_tokens=4)(worse, base)
        ... except Exception as stop:
        ...     print(type(stop).__name__, stop.tokens, round(stop.ratio, 2))
        PairedStop 8 1.35
    """

    def __init__(self, limit_ratio: float, *, z: float = 4.0, min_tokens: int = 128) -> None:
        import math

        self.log_limit = math.log(limit_ratio)
        self.z, self.min_tokens = z, min_tokens
        self._diffs: list[Any] = []

    def __call__(self, nll: Any, baseline_nll: Any) -> None:
        import math

        import torch

        from wattlm.bench.fidelity import PairedStop

        self._diffs.append((nll - baseline_nll).double())
        d = torch.cat(self._diffs)
        n = d.numel()
        if n < max(self.min_tokens, 2):
            return
        mean = float(d.mean())
        se = float(d.std()) / math.sqrt(n)
        if mean - self.z * se > self.log_limit:
            raise PairedStop(math.exp(mean), n)


def paired_rung(spec: Any) -> PairedRung | None:
    """The rung of a screened trial with a quality limit, a baseline perplexity and a
    reference (``None`` otherwise: scored in full)."""
    if spec.quality_limit is None or not spec.baseline_perplexity or not spec.reference_path:
        return None
    return PairedRung(spec.quality_limit / spec.baseline_perplexity)


def stopped_quality(spec: Any, stop: Any) -> dict[str, Any]:
    """The quality entry of a trial whose scoring :class:`PairedRung` stopped: a labelled
    estimate, the baseline's screen perplexity times the paired ratio.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> spec = NS(baseline_perplexity=20.0, ppl_max_length=512, ppl_stride=256,
        ...           data="wiki-sample", candidate=NS(backend="llamacpp"))
        >>> e = stopped_quality(spec, NS(ratio=1.2, tokens=255))
        >>> round(e["value"], 6), e["tokens"], e["method"].startswith("estimate")
        (24.0, 255, True)
    """
    return {
        "metric": "perplexity",
        "value": spec.baseline_perplexity * stop.ratio,
        "tokens": stop.tokens,
        "max_length": spec.ppl_max_length,
        "stride": spec.ppl_stride,
        "data": spec.data,
        "split": "test",
        "backend": spec.candidate.backend,
        "method": PAIRED_METHOD,
    }


def pruned_text(repeats: int) -> str:
    """``early_stop`` of a trial stopped as a clear loser.

    Example:
        >>> pruned_text(1)
        'pruned: dominated after 1 repeat(s)'
    """
    return f"pruned: dominated after {repeats} repeat(s)"


def stop_rule(spec: Any) -> Any:
    """The :class:`~wattlm.bench.phases.StopRule` of ``spec``'s bench (``None``: none).

    Example:
        >>> from wattlm.search.candidate import baseline_candidate
        >>> from wattlm.search.config import SCREEN
        >>> from wattlm.search.evaluate import TrialSpec
        >>> spec = TrialSpec(1, baseline_candidate(2), "screen", SCREEN, "decode-energy", "m",
        ...                  "d", stop_above=0.02)
        >>> rule = stop_rule(spec)
        >>> rule.stop_above, rule.rel_width, rule.min_repeats
        (0.02, 0.1, 2)
    """
    from wattlm.bench.phases import StopRule

    settings = spec.settings
    if spec.stop_above is None and settings.rel_width is None:
        return None
    return StopRule(
        stop_above=spec.stop_above,
        rel_width=settings.rel_width,
        min_repeats=settings.min_repeats,
        view=spec.energy_view,
    )


def outside_quality(spec: Any, quality: dict[str, Any] | None) -> bool:
    """Whether a freshly measured ``quality`` ends the trial before its bench.

    A perplexity above ``quality_limit``, or a mean KL divergence above ``kl_limit`` (the
    KL budget itself: KL is measured on the same reference tokens at every stage).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> outside_quality(NS(quality_limit=20.4, kl_limit=None), {"value": 21.0})
        True
        >>> outside_quality(NS(quality_limit=None, kl_limit=None), {"value": 99.0})
        False
        >>> outside_quality(NS(quality_limit=None, kl_limit=0.01),
        ...                 {"value": 20.0, "fidelity": {"kl_mean": 0.02}})
        True
    """
    if quality is None:
        return False
    limit = spec.quality_limit
    if limit is not None and quality["value"] > limit:
        return True
    kl = (quality.get("fidelity") or {}).get("kl_mean")
    return spec.kl_limit is not None and kl is not None and kl > spec.kl_limit


def pruned_reason(spec: Any, metrics: dict[str, Any]) -> str | None:
    """``pruned: …`` when the bench stopped ``spec`` as a clear loser, else ``None``.

    The rule stops as soon as the median decode J/token of the repeats so far is above
    ``stop_above`` (checked after every repeat, the last one included), so the final
    median is above it exactly when the rule fired.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> pruned_reason(NS(stop_above=0.02), {"energy_j_per_token": {"median": 0.05, "n": 1}})
        'pruned: dominated after 1 repeat(s)'
        >>> pruned_reason(NS(stop_above=0.02), {"energy_j_per_token": {"median": 0.01, "n": 3}})
    """
    energy = metrics.get("energy_j_per_token")
    if spec.stop_above is None or not energy or energy["median"] <= spec.stop_above:
        return None
    return pruned_text(energy["n"])


def measure_quality(loaded: Any, spec: Any) -> dict[str, Any]:
    """The perplexity of ``loaded`` on the stage's slice of the test text, measured on the
    runtime that serves it (llama.cpp's own log-probabilities for a GGUF backend; torch's
    for torch), with its fidelity to the baseline when the spec names a reference: the
    entry ``bench`` would give (:func:`~wattlm.bench.served_quality.measure_served`).
    Scoring stops early when :func:`paired_rung` finds the weights clearly over the
    limit: the entry is then :func:`stopped_quality`'s estimate."""
    from wattlm.bench.fidelity import PairedStop
    from wattlm.bench.served_quality import measure_served
    from wattlm.search.evaluate import bench_config
    from wattlm.search.reference import load_cached

    reference = load_cached(spec.reference_path) if spec.reference_path else None
    cfg = bench_config(spec, loaded)
    watch = paired_rung(spec) if reference is not None else None
    try:
        return measure_served(loaded, cfg, spec.candidate.backend, reference=reference, watch=watch)
    except PairedStop as stop:
        return stopped_quality(spec, stop)


def quality_first(loaded: Any, spec: Any, timings: dict[str, float]) -> dict[str, Any] | None:
    """The trial's perplexity measured before its bench, on the runtime that serves it
    (``None``: already known, or measured by the bench after its export); the seconds go
    to ``timings["quality_s"]``."""
    if spec.quality is not None:
        return None
    from wattlm.bench.backends import backend_class

    if backend_class(spec.candidate.backend).runs_an_export():
        return None  # its quality needs the export the bench makes: measured there
    from wattlm.bench.isolated import add_timing

    started = time.perf_counter()
    quality = measure_quality(loaded, spec)
    add_timing(timings, "quality_s", time.perf_counter() - started)
    return quality


def skipped_outcome(
    quality: dict[str, Any], weight_bytes: int | None, notes: list[str]
) -> dict[str, Any]:
    """The outcome of a trial ended by the quality-first rung: its perplexity, its size,
    no energy figure.

    Example:
        >>> out = skipped_outcome({"value": 30.0}, 1000, [])
        >>> out["metrics"]["perplexity"], out["metrics"]["objective"], out["early_stop"]
        (30.0, None, 'energy not measured: outside the quality budget')
    """
    from wattlm.search.metrics import empty_metrics

    metrics = empty_metrics()
    fidelity = quality.get("fidelity") or {}
    if quality.get("method") == PAIRED_METHOD:
        notes = [
            *notes,
            f"quality scoring stopped after {quality['tokens']} tokens: clearly over the "
            f"limit, paired with the baseline token by token; perplexity {quality['value']:.2f} "
            "is an estimate",
        ]
    metrics.update(
        perplexity=quality["value"],
        kl_mean=fidelity.get("kl_mean"),
        top1_agreement=fidelity.get("top1_agreement"),
        weight_bytes=weight_bytes,
    )
    return {
        "metrics": metrics,
        "quality": quality,
        "result_path": None,
        "energy_source": None,
        "notes": [*notes, QUALITY_SKIP],
        "error": None,
        "early_stop": QUALITY_SKIP,
    }
