from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from wattlm.federate.codec import to_record
from wattlm.federate.config import FederateConfig
from wattlm.federate.strategy import (
    aggregate,
    make_strategy,
    restore_strategy,
    strategy_state,
)

W1 = {"w": np.array([1.0, 2.0], np.float32), "b": np.array([[0.0]], np.float32)}
W2 = {"w": np.array([3.0, 6.0], np.float32), "b": np.array([[4.0]], np.float32)}
W3 = {"w": np.array([5.0, 1.0], np.float32), "b": np.array([[8.0]], np.float32)}


def test_fedavg_weighted_by_samples_is_the_hand_computed_weighted_mean():
    s = make_strategy(FederateConfig(clients=3, strategy="fedavg"))
    out = aggregate(s, 1, [(W1, 1), (W2, 3), (W3, 4)])
    # (1·[1,2] + 3·[3,6] + 4·[5,1]) / 8 = [30/8, 24/8]; b: (0 + 12 + 32) / 8
    np.testing.assert_allclose(out["w"], [3.75, 3.0], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [[5.5]], rtol=1e-6)
    assert out["w"].dtype == np.float32


def test_fedavg_equal_weighting_is_the_plain_mean():
    s = make_strategy(FederateConfig(clients=3, weighting="equal"))
    out = aggregate(s, 1, [(W1, 1), (W2, 3), (W3, 4)])
    np.testing.assert_allclose(out["w"], [3.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [[4.0]], rtol=1e-6)


def test_fedprox_aggregates_like_fedavg_and_sends_mu():
    s = make_strategy(FederateConfig(clients=2, strategy="fedprox", mu=0.25))
    assert type(s).__name__ == "FedProx" and s.proximal_mu == 0.25
    out = aggregate(s, 1, [(W1, 1), (W2, 1)])
    np.testing.assert_allclose(out["w"], [2.0, 4.0])


def test_fedavgm_applies_server_momentum_by_hand():
    cfg = FederateConfig(clients=2, strategy="fedavgm", server_lr=0.5, server_momentum=0.9)
    s = make_strategy(cfg)
    start = {"w": np.zeros(2, np.float32), "b": np.zeros((1, 1), np.float32)}
    s.current_arrays = to_record(start)
    out1 = aggregate(s, 1, [(W1, 1), (W2, 1)])
    # mean [2, 4]; pseudo-gradient g1 = 0 - [2, 4]; w1 = 0 - 0.5·g1 = [1, 2]
    np.testing.assert_allclose(out1["w"], [1.0, 2.0])
    state = strategy_state(s)
    again = make_strategy(cfg)
    restore_strategy(again, state)
    out2 = aggregate(again, 2, [(W1, 1), (W2, 1)])
    # g2 = [1, 2] - [2, 4] = [-1, -2]; m2 = 0.9·g1 + g2 = [-2.8, -5.6]; w2 = w1 - 0.5·m2
    np.testing.assert_allclose(out2["w"], [2.4, 4.8], rtol=1e-6)


def test_fedadam_moves_towards_the_clients():
    s = make_strategy(FederateConfig(clients=2, strategy="fedadam", server_lr=0.1))
    s.current_arrays = {"w": np.zeros(2, np.float32), "b": np.zeros((1, 1), np.float32)}
    out = aggregate(s, 1, [(W1, 1), (W2, 1)])
    assert (out["w"] > 0).all() and (out["w"] < 2.0).all()


def test_no_updates_means_no_new_model():
    s = make_strategy(FederateConfig(clients=2))
    assert aggregate(s, 1, []) is None
