"""The quality budget of a search: what a configuration must keep to be feasible.

Always a bound on the perplexity increase over the baseline (``--budget``, a fraction),
and, when stated, a bound on the mean KL divergence from the baseline's next-token
distribution (``--kl-budget``, nats per token; see :mod:`wattlm.search.reference`). KL is
far more sensitive than perplexity on a few thousand tokens and is measured on the same
tokens at every stage, so a KL budget is the stricter and steadier statement of "nearly
the same model"; a perplexity budget is the one a user reads most easily. A configuration
is feasible when every stated bound holds; each bound is one Optuna constraint, so
NSGA-II ranks infeasible trials by how far they are past each.

Example:
    >>> b = QualityBudget(max_increase=0.02, max_kl_nats=0.01)
    >>> b.holds({"perplexity_increase": 0.015, "kl_mean": 0.004})
    True
    >>> b.holds({"perplexity_increase": 0.015, "kl_mean": 0.02})
    False
    >>> b.constraints({"perplexity_increase": 0.03, "kl_mean": 0.004})
    {'perplexity_increase': 0.01, 'kl_mean': -0.006}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: rounding slack of a bound (a figure equal to its limit is within it)
_EPS = 1e-12


@dataclass(frozen=True)
class QualityBudget:
    """Bounds on the perplexity increase (fraction) and, optionally, on mean KL (nats)."""

    max_increase: float
    max_kl_nats: float | None = None

    @classmethod
    def of(cls, cfg: Any) -> QualityBudget:
        """The budget of an :class:`~wattlm.search.config.OptimizeConfig`."""
        return cls(cfg.budget, getattr(cfg, "kl_budget", None))

    def constraints(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Each stated bound's excess (``<= 0``: within it), rounded to 1e-12; a figure
        that was not measured counts as past its bound (``inf``)."""
        out = {
            "perplexity_increase": _excess(metrics.get("perplexity_increase"), self.max_increase)
        }
        if self.max_kl_nats is not None:
            out["kl_mean"] = _excess(metrics.get("kl_mean"), self.max_kl_nats)
        return out

    def holds(self, metrics: dict[str, Any]) -> bool:
        """Whether every stated bound holds for ``metrics``."""
        return all(v <= _EPS for v in self.constraints(metrics).values())

    def kl_outside(self, fidelity: dict[str, Any] | None) -> bool:
        """Whether a measured fidelity is past the KL bound (``False`` without a bound or a
        figure): KL is measured on the same reference tokens at every stage, so a screen
        figure past it is past it at the full stage too.

        Example:
            >>> QualityBudget(0.02, 0.01).kl_outside({"kl_mean": 0.03})
            True
            >>> QualityBudget(0.02).kl_outside({"kl_mean": 0.03})
            False
        """
        if self.max_kl_nats is None or not fidelity or fidelity.get("kl_mean") is None:
            return False
        return fidelity["kl_mean"] > self.max_kl_nats + _EPS

    def describe(self) -> str:
        """The budget in words.

        Example:
            >>> QualityBudget(0.02, 0.01).describe()
            'perplexity within +2.0% of the baseline and mean KL within 0.01 nats/token'
        """
        text = f"perplexity within +{self.max_increase:.1%} of the baseline"
        if self.max_kl_nats is not None:
            text += f" and mean KL within {self.max_kl_nats:g} nats/token"
        return text


def _excess(value: float | None, limit: float) -> float:
    return float("inf") if value is None else round(value - limit, 12)
