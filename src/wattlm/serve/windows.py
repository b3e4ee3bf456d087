"""Close energy windows on a real meter and feed them to an :class:`~.ledger.EnergyLedger`.

One window is always open. :meth:`WindowedMeter.cut` closes it and opens the next: the
server cuts every ``window_s`` seconds (a ticker) and whenever a request finishes, so a
request's last tokens are charged in a window that closes the moment it ends. All calls
are serialised by a lock, so the event loop and worker threads can share one instance.

Energy views: a :class:`~wattlm.measure.base.Measurement` carries the ``total`` view
(``energy_j``: idle-inclusive, for the cores the server holds) and the ``marginal`` view
(``energy_marginal_j``: what the work added over idle); both are split with the same
shares and reported under those names.

Example:
    >>> from wattlm.testing.meters import FakeMeter
    >>> wm = WindowedMeter(FakeMeter(energies_j=[5.0]))
    >>> wm.start("r1"); wm.tokens("r1", decode=4)
    >>> wm.finish("r1")["energy_j"]
    5.0
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from wattlm.measure.base import EnergyMeter, Measurement
from wattlm.serve.ledger import METHOD, EnergyLedger


def measurement_views(m: Measurement) -> dict[str, float | None]:
    """The energy views of one measurement: ``energy_j`` (total), ``energy_marginal_j``.

    Example:
        >>> measurement_views(Measurement("w", 1.0, 5.0, "rapl", energy_marginal_j=2.0))
        {'energy_j': 5.0, 'energy_marginal_j': 2.0}
    """
    return {"energy_j": m.energy_j, "energy_marginal_j": getattr(m, "energy_marginal_j", None)}


class WindowedMeter:
    """A meter cut into consecutive windows whose energy a ledger splits among requests."""

    def __init__(self, meter: EnergyMeter, ledger: EnergyLedger | None = None) -> None:
        self.meter = meter
        self.ledger = ledger or EnergyLedger()
        self.source = meter.source
        self.method = METHOD
        self.metered_s = 0.0
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._name = self._next_name()
        meter.begin_window(self._name)

    def _next_name(self) -> str:
        return f"serve-window-{next(self._ids)}"

    def cut(self) -> Measurement:
        """Close the open window (split its energy), open the next; return what it measured."""
        with self._lock:
            return self._cut()

    def _cut(self) -> Measurement:
        m = self.meter.end_window(self._name)
        self._name = self._next_name()
        self.meter.begin_window(self._name)
        self.metered_s += m.time_s
        self.ledger.close_window(measurement_views(m))
        return m

    def start(self, request_id: str) -> None:
        """A request became active."""
        with self._lock:
            self.ledger.start(request_id)

    def tokens(self, request_id: str, *, prefill: int = 0, decode: int = 0) -> None:
        """A request reported tokens processed (prefill: evaluated, not cached)."""
        with self._lock:
            self.ledger.tokens(request_id, prefill=prefill, decode=decode)

    def finish(self, request_id: str) -> dict[str, float | None]:
        """Close the window (charging the request's last tokens), end the request."""
        with self._lock:
            self._cut()
            return self.ledger.finish(request_id)

    def abandon(self, request_id: str) -> None:
        """End a request that failed or was cancelled (its charge so far stays attributed)."""
        with self._lock:
            if request_id in self.ledger.active:
                self._cut()
                self.ledger.finish(request_id)

    def totals(self) -> dict[str, Any]:
        """Ledger totals plus the meter's label and the seconds metered so far."""
        with self._lock:
            return {
                **self.ledger.totals(),
                "metered_s": self.metered_s,
                "windows": self.ledger.windows,
                "energy_source": self.source,
                "attribution": self.method,
            }

    def close(self) -> None:
        """Close the last window (its energy is split or counted idle)."""
        with self._lock:
            m = self.meter.end_window(self._name)
            self.metered_s += m.time_s
            self.ledger.close_window(measurement_views(m))
