"""Energy/quality search: ``optimize(config)`` finds the configurations (compression method,
backend, batch size, threads) on the Pareto front of energy per token vs quality, within a
quality budget, and recommends one; ``train_search(config)`` finds the training options
that reach a quality target for the least energy (``wattlm train search``).

Heavy modules (torch, optuna, ray) load only when a function that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from wattlm.search.candidate import Candidate
    from wattlm.search.config import OptimizeConfig, StageSettings
    from wattlm.search.pareto import pareto_front
    from wattlm.search.run import optimize
    from wattlm.search.space import SearchSpace, load_space
    from wattlm.search.train_config import TrainSearchConfig
    from wattlm.search.train_search_run import train_search
    from wattlm.search.train_space import TrainSpace, load_train_space

__all__ = [
    "Candidate",
    "OptimizeConfig",
    "SearchSpace",
    "StageSettings",
    "TrainSearchConfig",
    "TrainSpace",
    "load_space",
    "load_train_space",
    "optimize",
    "pareto_front",
    "train_search",
]

_LAZY = {
    "Candidate": "wattlm.search.candidate",
    "OptimizeConfig": "wattlm.search.config",
    "StageSettings": "wattlm.search.config",
    "pareto_front": "wattlm.search.pareto",
    "optimize": "wattlm.search.run",
    "SearchSpace": "wattlm.search.space",
    "load_space": "wattlm.search.space",
    "TrainSearchConfig": "wattlm.search.train_config",
    "train_search": "wattlm.search.train_search_run",
    "TrainSpace": "wattlm.search.train_space",
    "load_train_space": "wattlm.search.train_space",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wattlm.search' has no attribute {name!r}")
