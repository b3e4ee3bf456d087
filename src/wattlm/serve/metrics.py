"""``/metrics``: the server's counters in the Prometheus text format (``prometheus_client``).

Energy counters are read from the windowed meter at scrape time: joules given to requests
and idle joules, per energy view, labelled with the meter's source.

Example:
    >>> import pytest; _ = pytest.importorskip("prometheus_client")
    >>> m = ServeMetrics()
    >>> m.requests.labels(endpoint="completions", status="200").inc()
    >>> b"wattlm_serve_requests_total" in m.render(None)
    True
"""

from __future__ import annotations

from typing import Any


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        from wattlm.errors import WattlmError

        raise WattlmError(
            "wattlm serve needs prometheus_client", hint='pip install "wattlm[serve]"'
        ) from None
    return prometheus_client


class ServeMetrics:
    """Counters, gauges and histograms of one server, in their own registry."""

    def __init__(self) -> None:
        pc = _prometheus()
        self._pc = pc
        self.registry = pc.CollectorRegistry()
        r = self.registry
        self.requests = pc.Counter(
            "wattlm_serve_requests", "Requests answered, by endpoint and HTTP status",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        self.prompt_tokens = pc.Counter(
            "wattlm_serve_prompt_tokens", "Prompt tokens of finished requests", registry=r
        )
        self.cached_tokens = pc.Counter(
            "wattlm_serve_prompt_tokens_cached",
            "Prompt tokens served from the prefix cache (no forward pass)",
            registry=r,
        )
        self.completion_tokens = pc.Counter(
            "wattlm_serve_completion_tokens", "Generated tokens of finished requests", registry=r
        )
        self.in_flight = pc.Gauge(
            "wattlm_serve_requests_in_flight", "Requests admitted and not yet finished", registry=r
        )
        self.ttft = pc.Histogram(
            "wattlm_serve_time_to_first_token_seconds", "Time to first generated token",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=r,
        )  # fmt: skip
        self.latency = pc.Histogram(
            "wattlm_serve_request_seconds", "Request wall time",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120), registry=r,
        )  # fmt: skip
        self.energy = pc.Gauge(
            "wattlm_serve_energy_joules", "Metered joules since start: given to requests "
            "(attributed), idle, or carried to the next window with tokens",
            ["view", "share", "source"], registry=r,
        )  # fmt: skip

    def observe(self, outcome: Any) -> None:
        """Count one finished request (an :class:`~wattlm.serve.relay.Outcome`)."""
        self.prompt_tokens.inc(outcome.prompt_tokens)
        self.cached_tokens.inc(outcome.cached_tokens)
        self.completion_tokens.inc(outcome.completion_tokens)
        if outcome.ttft_s is not None:
            self.ttft.observe(outcome.ttft_s)
        self.latency.observe(outcome.wall_s)

    def render(self, totals: dict[str, Any] | None) -> bytes:
        """The text exposition, energy gauges refreshed from the meter's ``totals()``."""
        if totals is not None:
            for share in ("attributed", "idle", "carried"):
                for view, joules in totals[f"{share}_j"].items():
                    self.energy.labels(view=view, share=share, source=totals["energy_source"]).set(
                        joules
                    )
        return self._pc.generate_latest(self.registry)

    @property
    def content_type(self) -> str:
        return self._pc.CONTENT_TYPE_LATEST
