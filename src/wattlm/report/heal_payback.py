"""Healing energy, its payback, and the amortised objective a search decides on.

A trial whose stages include ``heal`` paid a one-off energy cost to get its weights (the
healing fine-tune). Its record carries that cost in a ``heal`` entry; this module holds
the two figures derived from it, in one place for the search's decision and the report:

- ``payback_tokens`` = heal energy / (baseline objective − trial objective): the served
  tokens after which the per-token saving has paid the healing back (``None`` when the
  trial saves nothing per token);
- the amortised objective = objective + heal energy / serving tokens, its interval shifted
  by the same constant. A trial without ``heal`` keeps its objective.

Example:
    >>> payback_tokens(100.0, 0.5, 0.25)  # 100 J repaid at 0.25 J/token saved
    400.0
    >>> amortised({"median": 0.5, "ci95": [0.25, 0.75]}, {"energy_j": 100.0}, 400)
    (0.75, (0.5, 1.0))
"""

from __future__ import annotations

from typing import Any

#: the default serving volume (tokens) the amortised objective spreads healing over
SERVING_TOKENS = 10_000_000

NO_SAVING_NOTE = (
    "payback_tokens is null: this trial saves no energy per token against the baseline, so "
    "its healing energy is never paid back"
)


def payback_tokens(heal_energy_j: float | None, baseline: float, trial: float) -> float | None:
    """Served tokens after which ``baseline - trial`` J/token repays ``heal_energy_j``.

    Example:
        >>> payback_tokens(5.0, 0.02, 0.01)
        500.0
        >>> payback_tokens(5.0, 0.01, 0.02) is None  # no saving per token
        True
    """
    saving = baseline - trial
    if heal_energy_j is None or saving <= 0:
        return None
    return heal_energy_j / saving


def heal_energy_j(rec: dict[str, Any]) -> float:
    """The healing energy charged to a trial record (0 without ``heal`` or a figure).

    Example:
        >>> heal_energy_j({"heal": {"energy_j": 3.5}}), heal_energy_j({"heal": None})
        (3.5, 0.0)
    """
    heal = rec.get("heal") or {}
    return float(heal.get("energy_j") or 0.0)


def amortised(
    objective: dict[str, Any], heal: dict[str, Any] | None, serving_tokens: float | None
) -> tuple[float, tuple[float, float]]:
    """(median, 95% interval) of ``objective`` plus ``heal``'s energy spread over
    ``serving_tokens`` (no ``heal`` or no volume: the objective itself; no interval: the
    median twice).

    Example:
        >>> amortised({"median": 0.5, "ci95": None}, None, 1000)
        (0.5, (0.5, 0.5))
    """
    extra = 0.0
    if heal and heal.get("energy_j") and serving_tokens:
        extra = float(heal["energy_j"]) / float(serving_tokens)
    median = objective["median"] + extra
    ci = objective.get("ci95")
    low, high = (ci[0], ci[1]) if ci else (objective["median"], objective["median"])
    return median, (low + extra, high + extra)
