"""What ``wattlm train search`` searches, and for what: :class:`TrainSearchConfig`.

Example:
    >>> cfg = TrainSearchConfig(target=0.85, n_trials=10)
    >>> cfg.metric_for("labelled"), cfg.higher_is_better("accuracy")
    ('accuracy', True)
    >>> TrainSearchConfig(target=1.2).check_target("accuracy")
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: target accuracy 1.2 can never be reached: accuracy is at most 1 (give e.g. --target 0.85)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from wattlm._config import Config, check, check_choice, check_int, check_positive

RECIPES = ("finetune", "distill")
METRICS = ("auto", "accuracy", "perplexity")
SAMPLERS = ("tpe", "random", "grid", "nsga2")
PRUNERS = ("none", "median", "successive-halving", "hyperband")
#: fields that do not change what a trial measures (left out of the study's name)
_FREE = ("n_trials", "storage", "ray", "ray_workers")


@dataclass(frozen=True)
class TrainSearchConfig(Config):
    """A training search: cost-to-target of ``recipe`` over a space of training options.

    Attributes:
        target: the quality a trial must reach (accuracy for classifiers, perplexity for
            causal LMs); a trial stops as soon as an evaluation reaches it.
        max_samples: a trial's training budget in samples (its cap); trials that do not
            reach the target within it are infeasible.
        max_trial_s: a trial's training time cap in seconds (``None``: none); a trial that
            hits it is infeasible, like one past ``max_samples``.
        eval_every_samples: evaluate (and check the target) after about this many samples.
        eval_max_samples: held-out examples per evaluation (classifiers).
        energy_prune: stop a trial whose energy spent, or projected to the target from its
            learning curve, exceeds the cheapest completed trial's energy to target.
        pruner: an Optuna pruner on intermediate quality as well (local and Ray trials).
        student, temperature, alpha: the ``distill`` recipe's student spec and loss mix
            (``model`` is then the teacher).
    """

    config_name = "train search config"

    target: float = 0.85
    model: str = "minilm-l6"
    data: str = "movie-sentiment"
    recipe: str = "finetune"
    metric: str = "auto"
    n_trials: int = 20
    sampler: str = "tpe"
    space: str = "train-default"
    seed: int = 0
    max_samples: int = 4096
    max_trial_s: float | None = None
    eval_every_samples: int = 512
    eval_max_samples: int | None = 500
    seq_len: int = 128
    max_train_samples: int | None = None
    energy_prune: bool = True
    pruner: str = "none"
    threads: int | None = None
    device: str = "cpu"
    meter: str = "auto"
    storage: str | None = None
    ray: str | None = None
    ray_workers: int | None = None
    student: str = "layers:3"
    temperature: float = 2.0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        check_positive("target", self.target)
        check_choice("recipe", self.recipe, RECIPES)
        check_positive("temperature", self.temperature)
        check(0 <= self.alpha <= 1, f"alpha must be in [0, 1], got {self.alpha}")
        check_choice("metric", self.metric, METRICS)
        check_choice("sampler", self.sampler, SAMPLERS)
        check_choice("pruner", self.pruner, PRUNERS)
        for name in ("n_trials", "max_samples", "eval_every_samples", "seq_len"):
            check_int(name, getattr(self, name), 1 if name != "seq_len" else 2)
        for name in ("eval_max_samples", "max_train_samples", "threads", "ray_workers"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        if self.max_trial_s is not None:
            check_positive("max_trial_s", self.max_trial_s)
        if self.metric != "auto":
            self.check_target(self.metric)

    def metric_for(self, kind: str) -> str:
        """The quality metric for data of ``kind`` (``labelled`` or ``text``)."""
        if self.metric != "auto":
            return self.metric
        return "accuracy" if kind == "labelled" else "perplexity"

    @staticmethod
    def higher_is_better(metric: str) -> bool:
        return metric == "accuracy"

    def check_target(self, metric: str) -> None:
        """Refuse a target no trial could reach, by the metric's definition."""
        if metric == "accuracy":
            check(
                self.target <= 1,
                f"target accuracy {self.target} can never be reached: accuracy is at most 1",
                "give e.g. --target 0.85",
            )
        else:
            check(
                self.target > 1,
                f"target perplexity {self.target} can never be reached: perplexity is at least 1",
                "give e.g. --target 30",
            )

    def fingerprint(self, space: dict[str, Any]) -> str:
        """A short hash of everything that changes what a trial measures (and the space)."""
        mine = {k: v for k, v in self.to_dict().items() if k not in _FREE}
        text = json.dumps({"config": mine, "space": space}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
