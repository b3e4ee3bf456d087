"""The two energy views every figure comes in: ``total`` and ``marginal``.

- ``total``: idle-inclusive, what a meter at the wall would see for the share of the
  machine the work holds (its allocated cores), for as long as it holds it. Right for a
  dedicated or rented machine: its idle power is paid because of the work.
- ``marginal``: what the work added over idle. Right for a shared, always-on machine whose
  idle power is paid anyway.

Example:
    >>> check_view("marginal")
    'marginal'
    >>> view_key("energy_j_per_token", "marginal")
    'energy_marginal_j_per_token'
"""

from __future__ import annotations

from wattlm.errors import WattlmError

__all__ = ["DEFAULT_VIEW", "VIEWS", "check_view", "view_key"]

VIEWS = ("total", "marginal")
DEFAULT_VIEW = "total"


def check_view(view: str) -> str:
    """``view`` if it is one of :data:`VIEWS`, else a :class:`WattlmError` naming them."""
    if view not in VIEWS:
        raise WattlmError(f"unknown energy view {view!r}", hint=f"choose {' or '.join(VIEWS)}")
    return view


def view_key(key: str, view: str) -> str:
    """The result field holding ``view`` of an energy field named ``key`` (``energy_...``).

    The ``total`` view keeps the plain name; the ``marginal`` one inserts ``marginal_``
    after ``energy_``.

    Example:
        >>> view_key("energy_j", "total")
        'energy_j'
    """
    if check_view(view) == "total":
        return key
    head, sep, tail = key.partition("energy_")
    if not sep:
        raise ValueError(f"{key!r} is not an energy field")
    return f"{head}energy_marginal_{tail}"
