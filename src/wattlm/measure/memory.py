"""Resident memory of this process: now, the peak so far, and the peak within a block.

Example:
    >>> with PeakRssSampler(interval_s=0.01) as sampler:
    ...     block = b"x" * (8 * 2**20)
    >>> sampler.peak_rss_bytes >= sampler.start_rss_bytes > 0
    True
"""

from __future__ import annotations

import resource
import sys
import threading
from types import TracebackType

import psutil

__all__ = ["PeakRssSampler", "current_rss_bytes", "peak_rss_bytes"]


def _maxrss_to_bytes(maxrss: int) -> int:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    return int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024


def peak_rss_bytes(who: int = resource.RUSAGE_SELF) -> int:
    """Peak resident set size in bytes since the process started (``ru_maxrss``).

    ``who=resource.RUSAGE_CHILDREN`` gives the peak of the largest waited-for child. The
    kernel batches RSS counters, so this can trail :func:`current_rss_bytes` by a few pages.

    Example:
        >>> peak_rss_bytes() > 0
        True
    """
    return _maxrss_to_bytes(resource.getrusage(who).ru_maxrss)


def current_rss_bytes(pid: int | None = None) -> int:
    """Resident set size of process ``pid`` (this process by default) in bytes."""
    return int(psutil.Process(pid).memory_info().rss)


class PeakRssSampler:
    """Context manager: samples RSS on a background thread and keeps the peak.

    ``ru_maxrss`` is a process-lifetime peak and cannot be reset, so a block's own peak is
    sampled instead (every ``interval_s``, plus once at entry and exit). Short spikes between
    samples can be missed; the figure is a lower bound of the true peak.
    """

    def __init__(self, interval_s: float = 0.05, pid: int | None = None) -> None:
        self.interval_s = interval_s
        self._process = psutil.Process(pid)
        self.peak_rss_bytes = 0
        self.start_rss_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        try:
            rss = int(self._process.memory_info().rss)
        except psutil.Error:  # the process went away
            return
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakRssSampler:
        self._sample()
        self.start_rss_bytes = self.peak_rss_bytes
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wattlm-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
