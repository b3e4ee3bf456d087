"""Federated fine-tuning on Flower with every client's joules and bytes: ``wattlm federate``.

Clients train on their own partition (IID or Dirichlet label skew) in Flower ClientApps; a
Flower ServerApp aggregates with a Flower strategy (FedAvg, FedProx, FedAvgM, FedAdam).
Each client's local training is measured in its own energy window; the bytes of every
serialised record are counted both ways; updates can travel as int8 or top-k deltas.
``compare_central`` trains the same model centrally on the union of the clients' data for
the side-by-side answer: does federating cost more or less energy to reach the same
quality?

Example:
    >>> from wattlm.federate import FederateConfig, federate
    >>> cfg = FederateConfig(clients=8, rounds=10, alpha=0.5, compression="int8")
    >>> result = federate(cfg, "runs/fed")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from wattlm.federate.config import FederateConfig
    from wattlm.federate.run import federate

__all__ = ["FederateConfig", "federate"]

_LAZY = {"FederateConfig": "wattlm.federate.config", "federate": "wattlm.federate.run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wattlm.federate' has no attribute {name!r}")
