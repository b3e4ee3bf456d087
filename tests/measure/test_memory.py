"""RSS now, peak RSS, and a block's own peak."""

from __future__ import annotations

import resource
import subprocess
import sys

from wattlm.measure.memory import PeakRssSampler, current_rss_bytes, peak_rss_bytes

MIB = 2**20


def test_peak_is_at_least_current() -> None:
    current = current_rss_bytes()
    assert current > 10 * MIB
    assert peak_rss_bytes() >= current - MIB  # the kernel batches RSS counters by pages
    assert peak_rss_bytes(resource.RUSAGE_CHILDREN) >= 0


def test_sampler_sees_a_transient_allocation() -> None:
    # In a fresh process: memory that earlier tests free meanwhile would hide the peak.
    code = """
import time
from wattlm.measure.memory import PeakRssSampler
MIB = 2**20
with PeakRssSampler(interval_s=0.005) as sampler:
    block = b"x" * (96 * MIB)  # touched pages: resident
    time.sleep(0.1)
    del block
    time.sleep(0.02)
print(sampler.peak_rss_bytes - sampler.start_rss_bytes)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert int(out.stdout) >= 80 * MIB


def test_sampler_thread_stops() -> None:
    sampler = PeakRssSampler(interval_s=0.001)
    with sampler:
        pass
    assert sampler._thread is not None and not sampler._thread.is_alive()
    assert sampler.peak_rss_bytes >= sampler.start_rss_bytes > 0
