from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.federate.partition import partition_indices

LABELS = [0] * 50 + [1] * 50


def test_iid_cuts_a_shuffle_into_equal_disjoint_parts():
    parts = partition_indices(LABELS, clients=4, alpha=None, seed=1)
    assert [len(p) for p in parts] == [25, 25, 25, 25]
    assert sorted(i for p in parts for i in p) == list(range(100))


def test_dirichlet_is_deterministic_covers_every_row_and_skews_labels():
    a = partition_indices(LABELS, clients=5, alpha=0.1, seed=3)
    b = partition_indices(LABELS, clients=5, alpha=0.1, seed=3)
    assert a == b
    assert sorted(i for p in a for i in p) == list(range(100))
    assert all(p for p in a)
    share_ones = [sum(LABELS[i] for i in p) / len(p) for p in a]
    # small alpha: some client is (nearly) single-label
    assert max(abs(s - 0.5) for s in share_ones) > 0.3
    assert partition_indices(LABELS, clients=5, alpha=0.1, seed=4) != a


def test_large_alpha_is_close_to_balanced():
    parts = partition_indices(LABELS * 10, clients=4, alpha=1000.0, seed=0)
    shares = [sum((LABELS * 10)[i] for i in p) / len(p) for p in parts]
    assert all(abs(s - 0.5) < 0.05 for s in shares)


def test_fewer_rows_than_clients_is_an_error():
    with pytest.raises(WattlmError, match="cannot be split between 3 clients"):
        partition_indices([0, 1], clients=3, alpha=None, seed=0)
