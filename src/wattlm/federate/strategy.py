"""The server strategies: Flower's own ``flwr.serverapp.strategy`` classes, configured from a
:class:`~wattlm.federate.config.FederateConfig`, and their state for checkpoints.

``fedavg`` weights each client by its training rows (``weighting="samples"``) or equally
(``"equal"``: the plain mean); ``fedprox`` is FedAvg plus the clients' proximal term ``mu``;
``fedavgm`` applies server momentum; ``fedadam`` the server-side Adam of Reddi et al.

Example:
    >>> from wattlm.federate.config import FederateConfig
    >>> s = make_strategy(FederateConfig(clients=3, strategy="fedprox", mu=0.1))
    >>> (type(s).__name__, s.proximal_mu, s.weighted_by_key)  # doctest: +SKIP
    ('FedProx', 0.1, 'num-examples')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wattlm.federate.config import FederateConfig

WEIGHT_KEYS = {"samples": "num-examples", "equal": "unit-weight"}
#: attributes of a strategy that change from round to round (saved in checkpoints)
_STATE = ("current_arrays", "momentum_vector", "m_t", "v_t")


def make_strategy(config: FederateConfig):
    """The Flower strategy ``config.strategy`` names, waiting for all ``config.clients``."""
    from flwr.serverapp import strategy as fs

    common: dict[str, Any] = {
        "fraction_train": config.fraction,
        "fraction_evaluate": 0.0,
        "min_train_nodes": 1,
        "min_evaluate_nodes": 0,
        "min_available_nodes": config.clients,
        "weighted_by_key": WEIGHT_KEYS[config.weighting],
    }
    if config.strategy == "fedavg":
        return fs.FedAvg(**common)
    if config.strategy == "fedprox":
        return fs.FedProx(**common, proximal_mu=config.mu)
    if config.strategy == "fedavgm":
        return fs.FedAvgM(
            **common, server_learning_rate=config.server_lr, server_momentum=config.server_momentum
        )
    return fs.FedAdam(**common, eta=config.server_lr, eta_l=config.lr)


def strategy_state(strategy) -> dict[str, Any]:
    """The strategy's round-to-round state as plain numpy (for a checkpoint)."""
    out = {}
    for name in _STATE:
        value = getattr(strategy, name, None)
        if value is None:
            continue
        if hasattr(value, "to_numpy_ndarrays"):  # an ArrayRecord
            value = {"__record__": {k: a.numpy() for k, a in value.items()}}
        out[name] = value
    return out


def restore_strategy(strategy, state: dict[str, Any]) -> None:
    """Put back what :func:`strategy_state` saved."""
    from wattlm.federate.codec import to_record

    for name, value in state.items():
        if isinstance(value, dict) and "__record__" in value:
            value = to_record(value["__record__"])
        setattr(strategy, name, value)


def aggregate(strategy, rnd: int, updates: list[tuple[dict[str, np.ndarray], int]]):
    """Aggregate client weights with ``strategy`` (Flower's ``aggregate_train``).

    ``updates`` are ``(weights, training rows)`` per client, already decoded and checked.
    Returns the new global weights as float32 arrays (``None`` when there are none).
    """
    import time

    from flwr.app import DEFAULT_TTL, Message, Metadata, MetricRecord, RecordDict

    from wattlm.federate.codec import from_record, to_record

    replies = []
    for i, (weights, rows) in enumerate(updates):
        content = RecordDict(
            {
                "arrays": to_record(weights),
                "metrics": MetricRecord({"num-examples": int(rows), "unit-weight": 1}),
            }
        )
        meta = Metadata(
            run_id=0,
            message_id="",
            src_node_id=i + 1,
            dst_node_id=0,
            reply_to_message_id="",
            group_id=str(rnd),
            created_at=time.time(),
            ttl=DEFAULT_TTL,
            message_type="train",
        )
        replies.append(Message(content, metadata=meta))
    if not replies:
        return None
    arrays, _ = strategy.aggregate_train(rnd, replies)
    if arrays is None:
        return None
    return {k: v.astype(np.float32) for k, v in from_record(arrays).items()}
