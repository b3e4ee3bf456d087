"""Per-request energy attribution: scripted windows and token events, hand-computed shares."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.serve.ledger import METHOD, EnergyLedger
from wattlm.serve.windows import WindowedMeter
from wattlm.testing.meters import FakeMeter


def test_three_windows_two_requests_hand_computed():
    """Window 1 (12 J): A prefills 20 tokens, B is cached except 4 evaluated → 20:4.
    Window 2 (6 J): A decodes 1, B decodes 2 → 1:2. Window 3 (9 J): only B, 3 tokens.
    A = 12·20/24 + 6·1/3 = 10 + 2 = 12 J; B = 12·4/24 + 6·2/3 + 9 = 2 + 4 + 9 = 15 J."""
    ledger = EnergyLedger()
    ledger.start("A")
    ledger.start("B")
    ledger.tokens("A", prefill=20)
    ledger.tokens("B", prefill=4)  # 96 more prompt tokens came from the cache: not counted
    ledger.close_window({"energy_j": 12.0})
    ledger.tokens("A", decode=1)
    ledger.tokens("B", decode=2)
    ledger.close_window({"energy_j": 6.0})
    assert ledger.finish("A") == {"energy_j": pytest.approx(12.0)}
    ledger.tokens("B", decode=3)
    ledger.close_window({"energy_j": 9.0})
    assert ledger.finish("B") == {"energy_j": pytest.approx(15.0)}
    assert ledger.totals() == {
        "attributed_j": {"energy_j": pytest.approx(27.0)},
        "idle_j": {},
        "carried_j": {},
    }


def test_idle_windows_are_reported_not_spread():
    ledger = EnergyLedger()
    ledger.close_window({"energy_j": 4.0})  # nobody active: idle
    ledger.start("A")
    ledger.tokens("A", decode=5)
    ledger.close_window({"energy_j": 3.0})
    assert ledger.finish("A")["energy_j"] == pytest.approx(3.0)
    ledger.close_window({"energy_j": 2.5})
    totals = ledger.totals()
    assert totals["idle_j"] == {"energy_j": pytest.approx(6.5)}
    assert totals["attributed_j"] == {"energy_j": pytest.approx(3.0)}
    assert ledger.idle_windows == 2 and ledger.windows == 3


def test_a_window_without_tokens_is_carried_to_the_next():
    """A long prompt still being evaluated: 5 J with no token reported, then 7 J with
    A's 30 prompt tokens and B's 10 → A gets 12·30/40 = 9 J, B 3 J."""
    ledger = EnergyLedger()
    ledger.start("A")
    ledger.start("B")
    ledger.close_window({"energy_j": 5.0})
    assert ledger.totals()["carried_j"] == {"energy_j": 5.0}
    ledger.tokens("A", prefill=30)
    ledger.tokens("B", decode=10)
    ledger.close_window({"energy_j": 7.0})
    assert ledger.finish("A")["energy_j"] == pytest.approx(9.0)
    assert ledger.finish("B")["energy_j"] == pytest.approx(3.0)
    assert ledger.totals()["carried_j"] == {}


def test_views_split_with_the_same_shares_and_none_stays_none():
    ledger = EnergyLedger()
    ledger.start("A")
    ledger.start("B")
    ledger.tokens("A", decode=3)
    ledger.tokens("B", decode=1)
    ledger.close_window({"energy_j": 8.0, "energy_marginal_j": 4.0, "other_j": None})
    a = ledger.finish("A")
    assert a["energy_j"] == pytest.approx(6.0)
    assert a["energy_marginal_j"] == pytest.approx(3.0)
    assert a["other_j"] is None


def test_a_request_that_did_nothing_costs_zero():
    ledger = EnergyLedger()
    ledger.start("A")
    ledger.start("B")
    ledger.tokens("B", decode=2)
    ledger.close_window({"energy_j": 1.0})
    assert ledger.finish("A") == {"energy_j": 0.0}


def test_bad_use_is_a_wattlm_error():
    ledger = EnergyLedger()
    with pytest.raises(WattlmError, match="not active"):
        ledger.tokens("nobody", decode=1)
    ledger.start("A")
    with pytest.raises(WattlmError, match="already active"):
        ledger.start("A")
    with pytest.raises(WattlmError, match=">= 0"):
        ledger.tokens("A", decode=-1)


def test_windowed_meter_cuts_at_finish_on_a_scripted_meter():
    """Scripted meter: window 1 = 10 J (A 1 token, B 4), window 2 = 6 J closed when A ends
    (A 2 tokens, B 1), window 3 = 3 J closed when B ends (B 1 token).
    A = 10·1/5 + 6·2/3 = 2 + 4 = 6 J; B = 10·4/5 + 6·1/3 + 3 = 8 + 2 + 3 = 13 J."""
    wm = WindowedMeter(FakeMeter(energies_j=[10.0, 6.0, 3.0, 0.5]))
    wm.start("A")
    wm.start("B")
    wm.tokens("A", decode=1)
    wm.tokens("B", prefill=4)
    wm.cut()
    wm.tokens("A", decode=2)
    wm.tokens("B", decode=1)
    assert wm.finish("A")["energy_j"] == pytest.approx(6.0)
    wm.tokens("B", decode=1)
    assert wm.finish("B")["energy_j"] == pytest.approx(13.0)
    wm.close()
    totals = wm.totals()
    assert totals["attributed_j"]["energy_j"] == pytest.approx(19.0)
    assert totals["idle_j"]["energy_j"] == pytest.approx(0.5)
    assert totals["energy_source"] == "fake" and totals["attribution"] == METHOD
