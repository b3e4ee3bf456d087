"""Split metered energy among the requests a server runs at once (``token-share-v1``).

The server meters itself in short windows. Each window's energy is split among the requests
that were active in it, in proportion to the tokens each had processed *and reported* in
that window:

- a prompt token that the engine evaluated counts for the request whose prompt it is;
- a prompt token served from the prefix cache counts nothing (it cost no forward pass);
- a generated token counts for the request that receives it.

A window in which requests were active but none reported a token (a long prompt still being
evaluated) carries its energy to the next window that has tokens; a window with no active
request is *idle* and is reported as such, never spread over later requests. So the joules
given to requests plus the idle joules plus what is still carried always add up to what the
meter measured.

This module is pure bookkeeping: no clock, no meter, no threads (see
:mod:`wattlm.serve.windows` for the part that closes windows on a real meter).

Example:
    >>> ledger = EnergyLedger()
    >>> ledger.start("a"); ledger.start("b")
    >>> ledger.tokens("a", prefill=30); ledger.tokens("b", decode=10)
    >>> ledger.close_window({"energy_j": 8.0})
    >>> ledger.finish("a")["energy_j"], ledger.finish("b")["energy_j"]
    (6.0, 2.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wattlm.errors import WattlmError

#: the method name written next to every per-request figure
METHOD = "token-share-v1"


@dataclass
class _Account:
    """What one request has been charged so far, and its tokens in the open window."""

    views_j: dict[str, float] = field(default_factory=dict)
    window_tokens: float = 0.0
    prefill_tokens: int = 0
    decode_tokens: int = 0
    windows: int = 0


class EnergyLedger:
    """Window-by-window token-share split of energy among concurrent requests.

    Energy comes in *views*: a dict of named joule figures per window (``{"energy_j": x}``,
    or several views such as total and marginal energy); every view is split with the same
    shares. A view whose figure is ``None`` (no meter) stays ``None`` for every request.
    """

    def __init__(self) -> None:
        self._active: dict[str, _Account] = {}
        self.idle_j: dict[str, float] = {}
        self.attributed_j: dict[str, float] = {}
        self.carried_j: dict[str, float] = {}
        self.unknown_views: set[str] = set()
        #: every view seen in a window so far
        self.views: set[str] = set()
        self.windows = 0
        self.idle_windows = 0

    # -- request life ---------------------------------------------------------------------

    def start(self, request_id: str) -> None:
        """Make ``request_id`` active (it shares windows from now on)."""
        if request_id in self._active:
            raise WattlmError(f"request {request_id!r} is already active")
        self._active[request_id] = _Account()

    def tokens(self, request_id: str, *, prefill: int = 0, decode: int = 0) -> None:
        """Record tokens ``request_id`` processed since its last report (cached ones: none)."""
        if prefill < 0 or decode < 0:
            raise WattlmError(f"token counts must be >= 0, got {prefill=} {decode=}")
        acc = self._account(request_id)
        acc.window_tokens += prefill + decode
        acc.prefill_tokens += prefill
        acc.decode_tokens += decode

    def finish(self, request_id: str) -> dict[str, float | None]:
        """Stop ``request_id``; return its joules per view (close its last window first).

        Tokens it reported in the still-open window are dropped from that window's split
        (close the window before finishing to charge them).
        """
        acc = self._active.pop(request_id, None)
        if acc is None:
            raise WattlmError(f"request {request_id!r} is not active")
        out: dict[str, float | None] = {v: acc.views_j.get(v, 0.0) for v in self.views}
        for view in self.unknown_views:
            out[view] = None
        return out

    @property
    def active(self) -> list[str]:
        """Ids of the requests now active."""
        return list(self._active)

    # -- windows --------------------------------------------------------------------------

    def close_window(self, views_j: dict[str, float | None]) -> None:
        """Split one closed window's energy (per view) among the active requests."""
        self.windows += 1
        self.views.update(views_j)
        known = {k: float(v) for k, v in views_j.items() if v is not None}
        self.unknown_views.update(k for k, v in views_j.items() if v is None)
        if not self._active:
            self.idle_windows += 1
            for view, joules in known.items():
                self.idle_j[view] = self.idle_j.get(view, 0.0) + joules
            return
        total_tokens = sum(a.window_tokens for a in self._active.values())
        if total_tokens <= 0:
            for view, joules in known.items():
                self.carried_j[view] = self.carried_j.get(view, 0.0) + joules
            return
        for view, joules in known.items():
            pool = joules + self.carried_j.pop(view, 0.0)
            self.attributed_j[view] = self.attributed_j.get(view, 0.0) + pool
            for acc in self._active.values():
                share = pool * acc.window_tokens / total_tokens
                acc.views_j[view] = acc.views_j.get(view, 0.0) + share
        for acc in self._active.values():
            acc.windows += acc.window_tokens > 0
            acc.window_tokens = 0.0

    def totals(self) -> dict[str, dict[str, float]]:
        """Joules per view: given to requests, idle, and still carried (not yet given)."""
        return {
            "attributed_j": dict(self.attributed_j),
            "idle_j": dict(self.idle_j),
            "carried_j": dict(self.carried_j),
        }

    def _account(self, request_id: str) -> _Account:
        try:
            return self._active[request_id]
        except KeyError:
            raise WattlmError(f"request {request_id!r} is not active") from None
