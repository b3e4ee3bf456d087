"""Typed shapes of the records wattlm writes, mirroring ``schema.json`` next to this module.

The JSON schema validates a record once it is written; these ``TypedDict`` classes give
the code that builds and reads records their keys (a type checker catches a misspelt
key). A test compares every class here with its schema definition, key for key and
required for required, so the two cannot drift apart. Values without a class of their own
(statistics, model descriptions, contexts) stay ``dict[str, Any]``: their schema says what
they hold.

Example:
    >>> sorted(BenchRun.__required_keys__)[:3]
    ['backend', 'backend_details', 'batch_size']
    >>> "screen_metrics" in TrialRecord.__optional_keys__
    True
"""

# no ``from __future__ import annotations``: NotRequired must be seen by TypedDict itself

from typing import Any, NotRequired, TypedDict

#: a statistic (median, interval, spread, unit…), see ``stat_fields`` in the schema
Stat = dict[str, Any]


class PrefillPhase(TypedDict):
    """A bench run's prefill figures (schema ``prefill``)."""

    time_to_first_token_s: Stat | None
    tokens_per_s: Stat | None
    energy_j_per_token: Stat | None
    energy_marginal_j_per_token: NotRequired[Stat | None]
    gco2e_per_token: Stat | None


class DecodePhase(TypedDict):
    """A bench run's decode figures (schema ``decode``)."""

    time_s: Stat | None
    tokens_per_s: Stat | None
    energy_j_per_token: Stat | None
    energy_marginal_j_per_token: NotRequired[Stat | None]
    gco2e_per_token: Stat | None


class BenchRun(TypedDict):
    """One (backend, batch size) run of a bench result (schema ``run``)."""

    backend: str
    batch_size: int
    threads: int
    dtype: str
    device: str
    prompt_tokens: int
    new_tokens: int
    warmup: int
    repeats: int
    energy_source: str
    prefill: PrefillPhase
    decode: DecodePhase
    backend_details: dict[str, Any]
    #: ``{"prefill": [measurement…], "decode": [measurement…]}``
    samples: dict[str, list[dict[str, Any]]]


class BenchResult(TypedDict):
    """``result.json`` of ``wattlm bench`` (schema ``bench_result``)."""

    schema_version: int
    kind: str
    wattlm_version: str
    created_utc: str
    config: dict[str, Any]
    model: dict[str, Any]
    quality: dict[str, Any] | None
    #: perplexity on each runtime's own log-probabilities, by backend
    runtime_quality: NotRequired[dict[str, dict[str, Any]]]
    #: KL divergence and top-1 agreement against the original, by backend
    fidelity: NotRequired[dict[str, dict[str, Any]]]
    memory: dict[str, Any]
    energy: dict[str, Any]
    carbon: dict[str, Any]
    runs: list[BenchRun]
    notes: list[str]
    context: dict[str, Any]


class OptimizeMetrics(TypedDict):
    """A trial's figures at one stage (schema ``optimize_metrics``)."""

    perplexity: float | None
    perplexity_increase: float | None
    #: mean KL(baseline || this) per scored token, nats, on the runtime that serves
    kl_mean: NotRequired[float | None]
    #: fraction of tokens whose most likely next token is the baseline's
    top1_agreement: NotRequired[float | None]
    objective: NotRequired[Stat | None]
    energy_j_per_token: Stat | None
    prefill_energy_j_per_token: NotRequired[Stat | None]
    request_energy_j: NotRequired[Stat | None]
    decode_tokens_per_s: Stat | None
    prefill_tokens_per_s: Stat | None
    latency_ms_per_token: Stat | None
    time_to_first_token_s: NotRequired[Stat | None]
    peak_rss_bytes: int | None
    weight_bytes: int | None
    #: accepted / drafted tokens of n-gram speculative decoding (llama.cpp; ``None``: off)
    speculative_acceptance: NotRequired[float | None]


class TrialRecord(TypedDict):
    """One trial of a search, the baseline or the peer (schema ``optimize_trial``)."""

    number: int | None
    label: str
    params: dict[str, Any]
    stages: list[dict[str, Any]]
    backend: str
    qtype: NotRequired[str | None]
    batch_size: int
    threads: int
    state: str  # complete | failed | infeasible | pruned
    feasible: bool
    stage: str  # screen | full
    error: str | None
    #: why the screen stopped the trial early (``wattlm.search.screen``), ``None``: it did not
    early_stop: NotRequired[str | None]
    metrics: OptimizeMetrics
    screen_metrics: NotRequired[OptimizeMetrics | None]
    pareto: bool
    duration_s: float
    screen_duration_s: NotRequired[float]
    full_duration_s: NotRequired[float]
    #: per-stage wall seconds of the record's stage (``wattlm.search.evaluate.TIMING_KEYS``)
    timings_s: NotRequired[dict[str, float]]
    screen_timings_s: NotRequired[dict[str, float] | None]
    result_path: str | None
    energy_source: NotRequired[str | None]
    duplicate_of: NotRequired[int | None]
    notes: NotRequired[list[str]]
    candidate: NotRequired[dict[str, Any]]
    #: the healing cost of the trial's weights (stages with ``heal``): ``energy_j``,
    #: ``energy_source``, ``steps``, ``time_s``, ``cached``, ``payback_tokens``,
    #: ``screen_payback_tokens``, ``amortised_objective`` (``wattlm.report.heal_payback``)
    heal: NotRequired[dict[str, Any] | None]


class RecommendedModel(TypedDict):
    """The saved and re-benched recommendation (schema ``optimize_result.recommended_model``)."""

    number: NotRequired[int]
    path: str
    result_path: str
    backend: NotRequired[str]
    qtype: NotRequired[str | None]
    batch_size: NotRequired[int]
    threads: NotRequired[int]
    metrics: OptimizeMetrics
    command: NotRequired[str]


class OptimizeRecord(TypedDict):
    """``optimize.json`` of ``wattlm optimize`` (schema ``optimize_result``)."""

    schema_version: int
    kind: str
    wattlm_version: str
    created_utc: str
    config: dict[str, Any]
    model: dict[str, Any]
    objective: dict[str, Any]
    budget: dict[str, Any]
    energy_source: str
    #: served tokens the healing energy is spread over in the decision (absent: older runs)
    serving_tokens: NotRequired[int]
    trials: list[TrialRecord]
    baseline: int
    peer: TrialRecord | None
    #: the peer measured at the recommendation's batch size (the headline ratio's)
    peer_same_batch: NotRequired[TrialRecord | None]
    pareto: list[int]
    screen_pareto: NotRequired[list[int]]
    ties: list[list[int]]
    recommended: int | None
    recommended_model: RecommendedModel | None
    ratios: dict[str, float | None]
    search: NotRequired[dict[str, Any]]
    context: dict[str, Any]
    notes: list[str]
    elapsed_s: float


#: each class and the schema definition it mirrors (``$defs`` name, then a property path)
SCHEMA_DEFS: dict[type, tuple[str, ...]] = {
    PrefillPhase: ("prefill",),
    DecodePhase: ("decode",),
    BenchRun: ("run",),
    BenchResult: ("bench_result",),
    OptimizeMetrics: ("optimize_metrics",),
    TrialRecord: ("optimize_trial",),
    RecommendedModel: ("optimize_result", "recommended_model"),
    OptimizeRecord: ("optimize_result",),
}
