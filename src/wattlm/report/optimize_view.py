"""What an optimize report says, shared by its HTML and Markdown: plain text, no markup.

The record (``optimize.json``) is read defensively: unknown keys are ignored, missing or
``null`` figures show as ``—``, and a recommendation that names an infeasible or failed
trial is not presented as one.

Example:
    >>> from wattlm.testing.optimize_record import sample_optimize_record
    >>> view = OptimizeView(sample_optimize_record())
    >>> view.recommended["number"], view.budget_sentence()
    (10, 'perplexity at most 17.85 (baseline 17.50 + 2%, on 7600 tokens)')
"""

from __future__ import annotations

import functools
from typing import Any

from wattlm.report._format import format_bytes
from wattlm.report.heal_payback import amortised
from wattlm.report.optimize_words import (
    DASH,
    describe_config,
    format_increase,
    format_perplexity,
    format_ratio,
    format_seconds,
    format_stat,
    median,
    metrics,
    trial_name,
)


class OptimizeView:
    """The facts of an optimize record that its reports show, computed once."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        trials = record.get("trials")
        self.trials: list[dict[str, Any]] = [t for t in trials or [] if isinstance(t, dict)]
        self.by_number = {t.get("number"): t for t in self.trials}
        self.budget: dict[str, Any] = record.get("budget") or {}
        self.objective: dict[str, Any] = record.get("objective") or {}
        self.source: str | None = record.get("energy_source")
        peer = record.get("peer")
        self.peer: dict[str, Any] | None = peer if isinstance(peer, dict) else None
        same = record.get("peer_same_batch")
        #: the peer at the recommendation's batch size (``None`` when it is the batch-1 peer)
        self.peer_same_batch: dict[str, Any] | None = (
            same if isinstance(same, dict) and same.get("batch_size") != 1 else None
        )
        self.baseline: dict[str, Any] | None = self.by_number.get(record.get("baseline"))
        self.front: list[dict[str, Any]] = [
            self.by_number[n] for n in record.get("pareto") or [] if n in self.by_number
        ]
        self.ties: list[tuple[int, int]] = [
            (pair[0], pair[1])
            for pair in record.get("ties") or []
            if isinstance(pair, (list, tuple)) and len(pair) == 2
        ]

    @functools.cached_property
    def recommended(self) -> dict[str, Any] | None:
        """The recommended trial, only when it is complete and feasible."""
        trial = self.by_number.get(self.record.get("recommended"))
        if trial is None or not self.usable(trial):
            return None
        return trial

    @property
    def rejected_recommendation(self) -> str | None:
        """Why the record's recommendation is not shown as one (it is infeasible or failed)."""
        number = self.record.get("recommended")
        trial = self.by_number.get(number)
        if number is None or self.recommended is not None:
            return None
        if trial is None:
            return f"the record recommends trial #{number}, which is not among its trials"
        return (
            f"the record recommends trial #{number}, but it is {trial.get('state')} "
            f"(feasible: {trial.get('feasible')}): not shown as a recommendation"
        )

    @staticmethod
    def usable(trial: dict[str, Any]) -> bool:
        return trial.get("feasible") is True and trial.get("state") not in (
            "failed",
            "infeasible",
            "pruned",
        )

    def tied_with(self, number: Any) -> list[dict[str, Any]]:
        others = [b if a == number else a for a, b in self.ties if number in (a, b)]
        return [self.by_number[n] for n in others if n in self.by_number]

    def increase(self, trial: dict[str, Any] | None) -> float | None:
        """The trial's perplexity increase over the baseline (fraction), from the record or
        computed from its perplexity."""
        m = metrics(trial)
        value = m.get("perplexity_increase")
        if isinstance(value, (int, float)):
            return value
        ppl, base = m.get("perplexity"), self.budget.get("baseline")
        if isinstance(ppl, (int, float)) and isinstance(base, (int, float)) and base > 0:
            return ppl / base - 1
        return None

    def budget_sentence(self) -> str:
        """``perplexity at most 17.85 (baseline 17.50 + 2%, on 7600 tokens)``."""
        b = self.budget
        base, rise, limit = b.get("baseline"), b.get("max_increase"), b.get("limit")
        numeric = (int, float)
        if (
            not isinstance(limit, numeric)
            and isinstance(base, numeric)
            and isinstance(rise, numeric)
        ):
            limit = base * (1 + rise)
        parts = []
        if isinstance(base, numeric):
            parts.append(f"baseline {format_perplexity(base)}")
        if isinstance(rise, numeric):
            parts.append(f"+ {rise * 100:g}%")
        parts = [" ".join(parts)] if parts else []
        if isinstance(b.get("tokens"), int):
            parts.append(f"on {b['tokens']} tokens")
        detail = f" ({', '.join(parts)})" if parts else ""
        text = f"{b.get('metric') or 'quality'} at most {format_perplexity(limit)}{detail}"
        if isinstance(b.get("max_kl_nats"), numeric):
            text += f", and mean KL from the baseline at most {b['max_kl_nats']:g} nats/token"
        return text

    def quality_sentence(self, trial: dict[str, Any]) -> str:
        """``perplexity 17.80 (+1.71% vs baseline; limit 17.85: within budget)``."""
        m = metrics(trial)
        ppl = m.get("perplexity")
        if not isinstance(ppl, (int, float)):
            return "perplexity not measured"
        limit = self.budget.get("limit")
        verdict = ""
        if isinstance(limit, (int, float)):
            within = "within budget" if ppl <= limit else "over budget"
            verdict = f"; limit {format_perplexity(limit)}: {within}"
        fidelity = format_fidelity(m)
        kl = "" if fidelity == DASH else f"; KL / top-1 vs baseline {fidelity}"
        return (
            f"perplexity {format_perplexity(ppl)} ({format_increase(self.increase(trial))} vs "
            f"baseline{verdict}){kl}"
        )

    def energy_unit(self) -> str:
        return str(self.objective.get("unit") or "J/token")

    def energy_sentence(self, trial: dict[str, Any]) -> str:
        stat = metrics(trial).get("energy_j_per_token")
        if median(stat) is None:
            return "no energy figure"
        return f"{format_stat(stat)} {self.energy_unit()} (median [95% CI])"

    def ratio_sentences(self) -> list[str]:
        ratios = self.record.get("ratios") or {}
        base, peer = (
            ratios.get("tokens_per_joule_vs_baseline"),
            ratios.get("tokens_per_joule_vs_peer"),
        )
        lines = []
        if isinstance(base, (int, float)):
            who = trial_name(self.baseline) if self.baseline else "the baseline"
            lines.append(f"{format_ratio(base)} the tokens per joule of {who}")
        same = ratios.get("tokens_per_joule_vs_peer_same_batch")
        if isinstance(same, (int, float)):
            who = trial_name(self.peer_same_batch or self.peer or {"label": "llama.cpp default"})
            lines.append(
                f"{format_ratio(same)} the tokens per joule of {who} (the same batch size)"
            )
        if isinstance(peer, (int, float)) and self.peer is not None:
            what = " (batching plus configuration)" if self.peer_same_batch is not None else ""
            lines.append(
                f"{format_ratio(peer)} the tokens per joule of {trial_name(self.peer)}{what}"
            )
        return lines

    def no_recommendation(self) -> str:
        feasible = [t for t in self.trials if self.usable(t)]
        if not self.trials:
            return "The search recorded no trials."
        if not feasible:
            return (
                f"No configuration met the budget ({self.budget_sentence()}): all "
                f"{len(self.trials)} trials were infeasible or failed. Nothing is recommended."
            )
        return "No configuration was recommended (the record names none)."

    def trial_cells(self, trial: dict[str, Any]) -> dict[str, str]:
        """Formatted cells of one trial row, by column key (see ``TRIAL_COLUMNS``)."""
        m = metrics(trial)
        flags = [
            "pareto" if trial.get("pareto") else "",
            "tie" if self.tied_with(trial.get("number")) else "",
        ]
        return {
            "number": str(trial.get("number", DASH)),
            "label": str(trial.get("label") or ""),
            "config": describe_config(trial),
            "state": f"{trial.get('state') or DASH} ({trial.get('stage') or '?'})",
            "perplexity": format_perplexity(m.get("perplexity")),
            "increase": format_increase(self.increase(trial)),
            "kl": format_fidelity(m),
            "energy": format_stat(m.get("energy_j_per_token")),
            "decode": format_stat(m.get("decode_tokens_per_s")),
            "latency": format_stat(m.get("latency_ms_per_token")),
            "weights": format_bytes(m.get("weight_bytes")),
            "rss": format_bytes(m.get("peak_rss_bytes")),
            "duration": format_seconds(trial.get("duration_s")),
            "flags": " ".join(f for f in flags if f),
            "heal": format_heal(trial, self.record.get("serving_tokens")),
            "error": str(trial.get("error") or ""),
            "stopped": str(trial.get("early_stop") or ""),
        }

    def shown(self, keys: list[str]) -> list[str]:
        """``keys`` without the fidelity column when no trial has a KL figure (records
        written before searches measured it)."""
        hidden = set()
        if not any(metrics(t).get("kl_mean") is not None for t in self.trials):
            hidden.add("kl")
        if not any(t.get("heal") for t in self.trials):  # no trial healed: no healing column
            hidden.add("heal")
        return [k for k in keys if k not in hidden]

    def sort_values(self, trial: dict[str, Any]) -> dict[str, float | None]:
        """Raw numbers behind the sortable columns (``None`` sorts last)."""
        m = metrics(trial)
        return {
            "number": trial.get("number"),
            "perplexity": m.get("perplexity"),
            "increase": self.increase(trial),
            "kl": m.get("kl_mean"),
            "energy": median(m.get("energy_j_per_token")),
            "decode": median(m.get("decode_tokens_per_s")),
            "latency": median(m.get("latency_ms_per_token")),
            "weights": m.get("weight_bytes"),
            "rss": m.get("peak_rss_bytes"),
            "duration": trial.get("duration_s"),
        }


def format_heal(trial: dict[str, Any], serving_tokens: int | None) -> str:
    """Healing energy, the served tokens that pay it back, the amortised objective.

    Example:
        >>> t = {"metrics": {"objective": {"median": 0.25, "ci95": None}},
        ...      "heal": {"energy_j": 100.0, "payback_tokens": 2000.0}}
        >>> format_heal(t, 400)
        '100 J; paid back after 2,000 tokens; 0.5 amortised'
        >>> format_heal({"heal": {"energy_j": 1.0, "payback_tokens": None}}, None)
        '1 J; never paid back'
        >>> format_heal({}, 400)
        '—'
    """
    heal = trial.get("heal")
    if not heal:
        return DASH
    energy = heal.get("energy_j")
    parts = [f"{energy:.3g} J" if isinstance(energy, (int, float)) else "energy unknown"]
    payback = heal.get("payback_tokens")
    parts.append(
        f"paid back after {payback:,.0f} tokens" if payback is not None else "never paid back"
    )
    objective = metrics(trial).get("objective")
    if objective and serving_tokens:
        parts.append(f"{amortised(objective, heal, serving_tokens)[0]:.4g} amortised")
    return "; ".join(parts)


def format_fidelity(m: dict[str, Any]) -> str:
    """``0.0033 / 96.6%``: mean KL (nats/token) and top-1 agreement with the baseline.

    Example:
        >>> format_fidelity({"kl_mean": 0.00331, "top1_agreement": 0.9658})
        '0.0033 / 96.6%'
        >>> format_fidelity({})
        '—'
    """
    kl, top1 = m.get("kl_mean"), m.get("top1_agreement")
    if not isinstance(kl, (int, float)):
        return DASH
    return f"{kl:.2g} / {top1:.1%}" if isinstance(top1, (int, float)) else f"{kl:.2g}"


# (key, header) of the trials table, in order; the error column is added when a trial failed,
# the ``stopped`` one when the screen stopped one early (``early_stop``: pruned, or no energy
# measured because its quality was outside the budget)
TRIAL_COLUMNS = [
    ("number", "#"),
    ("label", "trial"),
    ("config", "configuration"),
    ("state", "state (measured)"),
    ("perplexity", "perplexity"),
    ("increase", "Δ perplexity"),
    ("kl", "KL nats / top-1"),
    ("energy", "energy"),
    ("decode", "decode tok/s"),
    ("latency", "ms/token"),
    ("weights", "weights"),
    ("rss", "peak RSS"),
    ("duration", "trial time"),
    ("flags", "front / tie"),
    ("heal", "healing (J; payback; amortised over the serving tokens)"),
]
FRONT_COLUMNS = ["number", "label", "config", "perplexity", "increase", "kl", "energy", "decode"]


def column_headers(view: OptimizeView, keys: list[str]) -> list[str]:
    """Headers of the given column keys; the energy column names the objective's unit."""
    names = dict(TRIAL_COLUMNS, error="error", stopped="screen stopped early")
    names["energy"] = f"energy {view.energy_unit()}"
    return [names[k] for k in keys]
