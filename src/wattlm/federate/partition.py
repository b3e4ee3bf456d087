"""Deterministic client partitions of a labelled training set: IID or Dirichlet label skew.

Dirichlet(α) partitioning (Hsu et al., 2019): for each label, the share each client gets is
drawn from Dirichlet(α, ..., α); small α gives clients few labels, large α tends to IID.
Every client gets at least one row. Same seed, same partitions, in every process.

Example:
    >>> labels = [0, 1] * 10
    >>> parts = partition_indices(labels, clients=2, alpha=None, seed=0)
    >>> sorted(len(p) for p in parts), sorted(i for p in parts for i in p) == list(range(20))
    ([10, 10], True)
"""

from __future__ import annotations

import numpy as np

from wattlm.errors import WattlmError


def partition_indices(
    labels: list[int], *, clients: int, alpha: float | None, seed: int
) -> list[list[int]]:
    """Row indices of each client: an IID shuffle cut in equal parts, or Dirichlet(α) per
    label. Raises when there are fewer rows than clients."""
    n = len(labels)
    if n < clients:
        raise WattlmError(
            f"{n} training rows cannot be split between {clients} clients",
            hint="use fewer --clients or more --max-train-samples",
        )
    rng = np.random.default_rng(seed)
    if alpha is None:
        order = rng.permutation(n)
        return [sorted(int(i) for i in part) for part in np.array_split(order, clients)]
    parts: list[list[int]] = [[] for _ in range(clients)]
    labels_arr = np.asarray(labels)
    for label in sorted(set(labels)):
        rows = rng.permutation(np.flatnonzero(labels_arr == label))
        shares = rng.dirichlet([alpha] * clients)
        cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
        for client, chunk in enumerate(np.split(rows, cuts)):
            parts[client].extend(int(i) for i in chunk)
    _fill_empty(parts, rng)
    return [sorted(p) for p in parts]


def _fill_empty(parts: list[list[int]], rng: np.random.Generator) -> None:
    """Give every empty client one row from the largest client (a client must train)."""
    for part in parts:
        if not part:
            donor = max(parts, key=len)
            part.append(donor.pop(int(rng.integers(len(donor)))))
