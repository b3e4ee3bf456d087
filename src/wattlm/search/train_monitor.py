"""One training trial's learning curve against cumulative joules, and when it stops:

- **reached**: an evaluation reaches the target; the trial's *energy to target* is the
  training energy spent up to that step;
- **pruned (energy)**: the trial has already spent more than the cheapest completed trial's
  energy to target, or its learning curve, a line fitted to its last three evaluations
  (quality per joule), projects more than that to reach the target;
- **pruned (Optuna)**: the study's pruner (median, successive halving, Hyperband) judged its
  intermediate quality (in this process or on a Ray worker: :mod:`.train_pruner`), from its
  third evaluation on (each evaluation is reported; earlier verdicts are not acted on);
- **cap**: its sample budget (or time cap) ran out before the target (infeasible; its best
  quality kept).

The real trial (:mod:`wattlm.search.train_trial`) and the synthetic one
(:mod:`wattlm.search.train_synthetic`) both drive a :class:`TrialMonitor`, so the rules
are one implementation.

Example:
    >>> m = TrialMonitor(target=0.8, higher=True, eval_every=1, best_energy_j=None)
    >>> [m.step(10.0, 8, lambda q=q: q) for q in (0.5, 0.7, 0.85)]
    [None, None, 'reached']
    >>> m.energy_to_target_j, [p["quality"] for p in m.curve]
    (30.0, [0.5, 0.7, 0.85])
    >>> curve = [{"energy_j": 10.0, "quality": 0.5}, {"energy_j": 20.0, "quality": 0.6}]
    >>> round(projected_energy_j(curve, target=0.8, higher=True), 6)
    40.0
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

#: evaluations the projection's line is fitted to: two consecutive evaluations on 500
#: held-out examples differ by about their noise (±0.016 accuracy at 0.85), so a line
#: through the last two alone often points down on a curve still rising; three points
#: (least squares) halve the slope's spread
PROJECTION_POINTS = 3


def projected_energy_j(curve: list[dict[str, Any]], *, target: float, higher: bool) -> float:
    """Energy at which a line fitted (least squares) to the curve's last
    :data:`PROJECTION_POINTS` points reaches ``target`` (``inf`` when the line is not
    improving).

    Example:
        >>> curve = [{"energy_j": e, "quality": q} for e, q in [(10, 0.5), (20, 0.7), (30, 0.6)]]
        >>> round(projected_energy_j(curve, target=0.85, higher=True), 6)
        70.0
        >>> projected_energy_j(curve[1:], target=0.85, higher=True)  # two points, falling
        inf
    """
    points = [(p["energy_j"], p["quality"]) for p in curve[-PROJECTION_POINTS:]]
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return math.inf
    energies, qualities = zip(*points, strict=True)
    slope, intercept = statistics.linear_regression(energies, qualities)
    sign = 1.0 if higher else -1.0
    if sign * slope <= 0:
        return math.inf
    return max(energies[-1], (target - intercept) / slope)


class TrialMonitor:
    """Counts a trial's steps, samples and joules; evaluates every ``eval_every`` steps.

    Args:
        target: the quality to reach; ``higher``: whether higher quality is better.
        eval_every: optimizer steps between evaluations.
        best_energy_j: the cheapest completed trial's energy to target (``None``: no
            energy pruning yet, or energy pruning off).
        pruner: ``(samples, quality) -> bool``, True to prune (an Optuna pruner's verdict).
        max_steps: the cap; the last step is always evaluated.
    """

    def __init__(
        self,
        *,
        target: float,
        higher: bool,
        eval_every: int,
        best_energy_j: float | None,
        pruner: Callable[[int, float], bool] | None = None,
        max_steps: int | None = None,
        min_points: int = 3,
    ) -> None:
        self.target, self.higher, self.eval_every = target, higher, eval_every
        self.best_energy_j, self.pruner, self.max_steps = best_energy_j, pruner, max_steps
        self.min_points = min_points
        self.steps = self.samples = 0
        self.energy_j = 0.0
        self.eval_energy_j = 0.0
        self.curve: list[dict[str, Any]] = []
        self.energy_to_target_j: float | None = None
        self.stop: str | None = None
        self.prune_reason: str | None = None

    def reached(self, quality: float) -> bool:
        return quality >= self.target if self.higher else quality <= self.target

    def best_quality(self) -> float | None:
        if not self.curve:
            return None
        qs = [p["quality"] for p in self.curve]
        return max(qs) if self.higher else min(qs)

    def step(
        self,
        energy_j: float,
        samples: int,
        evaluate: Callable[[], float],
        eval_energy: Callable[[], float] | None = None,
    ) -> str | None:
        """Count one optimizer step; evaluate when due. Returns why to stop, or ``None``.

        ``evaluate`` returns the quality; ``eval_energy`` (if given) the joules of that
        evaluation, counted apart from training energy.
        """
        self.steps += 1
        self.samples += samples
        self.energy_j += energy_j
        last = self.max_steps is not None and self.steps >= self.max_steps
        if not (self.steps % self.eval_every == 0 or last):
            return self._over_budget()
        quality = float(evaluate())
        if eval_energy is not None:
            self.eval_energy_j += float(eval_energy() or 0.0)
        self.curve.append(
            {"step": self.steps, "samples": self.samples, "energy_j": self.energy_j,
             "quality": quality}
        )  # fmt: skip
        # every evaluation is reported to the pruner (the one that reaches the target too:
        # later trials are judged against it at that step); its verdict counts from the
        # ``min_points``-th on, as the projection's: a curve under warm-up or a high
        # learning rate starts low (0.53 after 512 samples for one that led at 0.84)
        judged = self.pruner is not None and self.pruner(self.samples, quality)
        if self.reached(quality):
            self.energy_to_target_j = self.energy_j
            return self._set("reached")
        if last:
            return self._set("cap")
        if judged and len(self.curve) >= self.min_points:
            return self._set("pruned", "the study's pruner: intermediate quality too low")
        return self._over_budget(projected=True)

    def final(
        self, evaluate: Callable[[], float], eval_energy: Callable[[], float] | None = None
    ) -> None:
        """A trial that ended without a verdict (its time cap): evaluate its last step."""
        if self.stop is not None or not self.steps:
            return
        if not self.curve or self.curve[-1]["step"] != self.steps:
            self.steps -= 1
            self.max_steps = self.steps + 1  # the next step is the last: evaluated
            self.step(0.0, 0, evaluate, eval_energy)
        if self.stop is None:
            self._set("cap")

    def _over_budget(self, projected: bool = False) -> str | None:
        best = self.best_energy_j
        if best is None:
            return None
        if self.energy_j > best:
            return self._set(
                "pruned", f"spent {self.energy_j:.4g} J, more than the best trial's {best:.4g} J"
            )
        if projected and len(self.curve) >= self.min_points:
            guess = projected_energy_j(self.curve, target=self.target, higher=self.higher)
            if guess > best:
                shown = "never (no progress)" if math.isinf(guess) else f"{guess:.4g} J"
                return self._set(
                    "pruned", f"projected energy to target {shown} > best trial's {best:.4g} J"
                )
        return None

    def _set(self, stop: str, reason: str | None = None) -> str:
        self.stop, self.prune_reason = stop, reason
        return stop

    def outcome(self) -> dict[str, Any]:
        """The trial's figures (merged into its outcome)."""
        return {
            "stop": self.stop or "cap",
            "prune_reason": self.prune_reason,
            "energy_to_target_j": self.energy_to_target_j,
            "energy_j": self.energy_j,
            "eval_energy_j": self.eval_energy_j,
            "steps": self.steps,
            "samples": self.samples,
            "quality_best": self.best_quality(),
            "quality_last": self.curve[-1]["quality"] if self.curve else None,
            "curve": list(self.curve),
        }
