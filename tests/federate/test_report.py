from __future__ import annotations

import pytest

from wattlm.federate.report import figures, render_html, render_markdown
from wattlm.federate.totals import central_totals, federated_totals


def _client(p, energy, status="ok"):
    out = {"partition": p, "status": status, "uplink_bytes": 100, "downlink_bytes": 400}
    if status == "ok":
        out["energy_j"] = energy
    else:
        out["reason"] = "injected crash"
    return out


def _result():
    rounds = [
        {
            "round": 1,
            "clients": [_client(0, 10.0), _client(1, 0.0, "failed")],
            "aggregated": 1,
            "failed": [1],
            "server": {"aggregate_energy_j": 1.0},
            "quality": {"metric": "accuracy", "value": 0.7},
        },
        {
            "round": 2,
            "clients": [_client(0, 10.0), _client(1, 20.0)],
            "aggregated": 2,
            "failed": [],
            "server": {"aggregate_energy_j": 1.0},
            "quality": {"metric": "accuracy", "value": 0.85},
        },
    ]
    totals = federated_totals(rounds, target=0.8)
    central = {
        "rounds": [{"round": 1, "quality": 0.82, "energy_j": 15.0}],
        "energy_j": 15.0,
        "final_quality": 0.82,
    }
    central["to_target"] = central_totals(central, target=0.8)
    return {
        "config": {"model": "m", "data": "d", "clients": 2, "rounds": 2, "strategy": "fedavg",
                   "compression": "none", "target": 0.8},
        "data": {"partition": "iid"},
        "energy": {"source": "fake"},
        "initial_quality": {"metric": "accuracy", "value": 0.5},
        "rounds": rounds,
        "totals": totals,
        "central": central,
        "per_client": [
            {"partition": 0, "rounds_ok": 2, "rounds_failed": 0, "energy_j": 20.0, "bytes": 1000},
            {"partition": 1, "rounds_ok": 1, "rounds_failed": 1, "energy_j": 20.0, "bytes": 1000},
        ],
    }  # fmt: skip


def test_totals_and_cost_to_target_by_hand():
    t = _result()["totals"]
    assert t["energy_j"] == pytest.approx(42.0)  # 10 + 1, then 10 + 20 + 1
    assert t["bytes"] == 2000 and t["failed_updates"] == 1
    assert (t["to_target"]["round"], t["to_target"]["energy_j"]) == (2, pytest.approx(42.0))
    assert _result()["central"]["to_target"]["energy_j"] == 15.0


def test_perplexity_target_is_reached_from_above():
    rounds = _result()["rounds"]
    rounds[0]["quality"] = {"metric": "perplexity", "value": 40.0}
    rounds[1]["quality"] = {"metric": "perplexity", "value": 25.0}
    t = federated_totals(rounds, target=30.0, higher=False)
    assert t["to_target"]["round"] == 2


def test_markdown_and_figures_carry_the_numbers():
    result = _result()
    md = render_markdown(result)
    assert "| federated | 0.8500 | 42.0 J | 2.00 kB | 42.0 J (round 2) |" in md
    assert "| centralised | 0.8200 | 15.0 J | 0 B | 15.0 J (round 1) |" in md
    assert "round 1, client 1: failed (injected crash)" in md
    energy, nbytes, bars = figures(result)
    assert energy["data"][0]["x"] == [0.0, 11.0, 42.0]
    assert energy["data"][1]["x"] == [0.0, 15.0]  # the centralised curve
    assert nbytes["data"][0]["x"] == [0, 1000, 2000]
    assert [b["y"] for b in bars["data"]] == [[10.0, 10.0], [0.0, 20.0]]
    page = render_html(result)
    assert page.count("Plotly.newPlot") == 1 and "fig2" in page
