"""The slot choice of a sweep on hand-made level figures (no server)."""

from __future__ import annotations

import math
import statistics

import pytest

from wattlm.serve.slotchoice import choose_slots, level_entry, mean_interval


def level(slots, p99, server_j, ci=None, *, lost=0, meter_j=None, meter_ci=None):
    return {
        "slots": slots,
        "lost": lost,
        "e2e_latency_p99_ms": p99,
        "server_j_per_request": server_j,
        "server_j_per_request_ci95": ci,
        "meter_j_per_request": meter_j,
        "meter_j_per_request_ci95": meter_ci,
    }


def test_least_energy_among_the_slot_counts_that_meet_the_slo():
    levels = [
        level(1, 900.0, 1.0, [0.9, 1.1]),  # least energy, but p99 above the limit
        level(2, 450.0, 2.0, [1.9, 2.1]),
        level(4, 300.0, 1.5, [1.4, 1.6]),
        level(8, 280.0, 1.8, [1.75, 1.85]),
    ]
    c = choose_slots(levels, slo_p99_ms=500.0)
    assert (c["slots"], c["meets_slo"], c["energy_from"]) == (4, True, "server")
    assert c["j_per_request"] == 1.5 and c["tied_with"] == []
    assert "least J/request (server) with p99 ≤ 500 ms" in c["reason"]
    assert choose_slots(levels, slo_p99_ms=1000.0)["slots"] == 1
    assert choose_slots(levels, slo_p99_ms=None)["slots"] == 1  # no latency limit


def test_the_limit_is_inclusive():
    levels = [level(1, 500.0, 1.0, [0.9, 1.1]), level(2, 400.0, 2.0, [1.9, 2.1])]
    assert choose_slots(levels, slo_p99_ms=500.0)["slots"] == 1
    assert choose_slots(levels, slo_p99_ms=499.9)["slots"] == 2


def test_overlapping_intervals_go_to_fewer_slots():
    levels = [
        level(2, 300.0, 1.6, [1.40, 1.80]),
        level(4, 250.0, 1.5, [1.30, 1.70]),  # least, but its interval overlaps 2 slots'
        level(8, 200.0, 1.55, [1.50, 1.60]),
    ]
    c = choose_slots(levels, slo_p99_ms=1000.0)
    assert c["slots"] == 2 and c["tied_with"] == [4, 8]
    assert "2 slots tie with 4 (95% intervals overlap)" in c["reason"]
    apart = [level(2, 300.0, 1.6, [1.55, 1.65]), level(4, 250.0, 1.5, [1.45, 1.54])]
    assert choose_slots(apart, slo_p99_ms=1000.0)["slots"] == 4


def test_without_intervals_only_the_least_figure_counts():
    levels = [level(1, 100.0, 1.01), level(2, 100.0, 1.0)]
    c = choose_slots(levels, slo_p99_ms=1000.0)
    assert (c["slots"], c["tied_with"]) == (2, [])


def test_a_level_that_lost_requests_is_excluded():
    levels = [
        level(1, 800.0, 2.0, [1.9, 2.1]),
        level(2, 400.0, 0.5, [0.4, 0.6], lost=3),  # refused requests: cheap but excluded
    ]
    c = choose_slots(levels, slo_p99_ms=1000.0)
    assert (c["slots"], c["meets_slo"], c["j_per_request"]) == (1, True, 2.0)


def test_when_no_level_meets_the_slo_the_lowest_p99_is_named():
    levels = [
        level(1, 2000.0, 1.0, [0.9, 1.1]),
        level(2, 1200.0, 1.5, [1.4, 1.6]),
        level(4, 900.0, 1.2, [1.1, 1.3], lost=2),  # lowest p99, but it lost requests
    ]
    c = choose_slots(levels, slo_p99_ms=500.0)
    assert (c["slots"], c["meets_slo"]) == (2, False)
    assert c["reason"] == (
        "no slot count met p99 ≤ 500 ms without losing a request; 2 slots had the lowest p99 "
        "(1200 ms)"
    )
    all_lossy = [level(1, 800.0, 1.0, lost=1), level(2, 700.0, 1.0, lost=1)]
    c = choose_slots(all_lossy, slo_p99_ms=500.0)
    assert (c["slots"], c["meets_slo"]) == (2, False) and "but lost 1 request" in c["reason"]
    nothing = [level(1, None, None, lost=4)]
    assert choose_slots(nothing, slo_p99_ms=500.0)["slots"] is None


def test_the_meter_figure_decides_when_every_level_has_one():
    levels = [
        level(1, 100.0, 1.0, [0.95, 1.05], meter_j=3.0, meter_ci=[2.9, 3.1]),
        level(2, 100.0, 2.0, [1.95, 2.05], meter_j=2.0, meter_ci=[1.9, 2.1]),
    ]
    c = choose_slots(levels, slo_p99_ms=1000.0)
    assert (c["slots"], c["energy_from"], c["j_per_request"]) == (2, "meter", 2.0)
    levels[0]["meter_j_per_request"] = None  # one level without: the server's figures
    c = choose_slots(levels, slo_p99_ms=1000.0)
    assert (c["slots"], c["energy_from"]) == (1, "server")


def test_no_energy_figure_falls_back_to_fewest_slots():
    levels = [level(2, 100.0, None), level(1, 100.0, None)]
    c = choose_slots(levels, slo_p99_ms=1000.0)
    assert (c["slots"], c["j_per_request"]) == (1, None) and "no energy figure" in c["reason"]


def test_mean_interval_is_students_t():
    values = [1.0, 2.0, 4.0, 3.0, 6.0, 5.0, 2.5, 3.5, 4.5, 1.5, 5.5]  # n = 11, df = 10
    low, high = mean_interval(values)
    half = 2.228138852 * statistics.stdev(values) / math.sqrt(len(values))  # t(0.975, 10)
    mean = statistics.fmean(values)
    assert low == pytest.approx(mean - half, rel=2e-3) and high == pytest.approx(
        mean + half, rel=2e-3
    )
    assert mean_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert mean_interval([0.1, 5.0])[0] == 0.0  # clipped: energies are not negative
    assert mean_interval([]) is None


def test_level_entry_from_a_summary():
    summary = {
        "requests": 5, "ok": 4, "errors": {"http_429": 1}, "requests_per_s": 2.0,
        "output_tokens_per_s": 20.0, "latency": {"p50_ms": 100.0, "p95_ms": 180.0, "p99_ms": 195.0},
        "ttft": {"p99_ms": 40.0}, "server_energy_j_per_request": 2.0,
        "meter_energy_j_per_request": 3.0,
    }  # fmt: skip
    e = level_entry(4, summary, [1.5, 2.5, 2.0, 2.0])
    assert (e["slots"], e["ok"], e["lost"], e["errors"]) == (4, 4, 1, {"http_429": 1})
    assert (e["e2e_latency_p50_ms"], e["e2e_latency_p95_ms"], e["e2e_latency_p99_ms"]) == (
        100.0, 180.0, 195.0,
    )  # fmt: skip
    lo, hi = e["server_j_per_request_ci95"]
    assert lo < 2.0 < hi
    assert e["meter_j_per_request_ci95"] == pytest.approx([1.5 * lo, 1.5 * hi], rel=1e-5)
    c = choose_slots([e], slo_p99_ms=1000.0)
    assert (c["slots"], c["meets_slo"]) == (4, False)  # it lost a request
