"""The two energy views: names, checks and the Measurement accessors."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.measure.base import Measurement, split_idle
from wattlm.measure.views import VIEWS, check_view, view_key


def test_views_and_keys() -> None:
    assert VIEWS == ("total", "marginal")
    assert view_key("energy_j_per_token", "total") == "energy_j_per_token"
    assert view_key("prefill_energy_j_per_token", "marginal") == (
        "prefill_energy_marginal_j_per_token"
    )
    with pytest.raises(WattlmError, match="unknown energy view 'idle'"):
        check_view("idle")


def test_measurement_accessors() -> None:
    m = Measurement("w", 1.0, 9.0, "fake", energy_marginal_j=4.0, energy_band_j=[8.0, 10.0])
    assert (m.energy_total_j, m.energy("marginal"), m.band("total")) == (9.0, 4.0, [8.0, 10.0])
    assert m.band("marginal") is None
    with pytest.raises(WattlmError):
        m.energy("wall")


def test_split_idle_by_hand() -> None:
    e = split_idle({"a": 50.0}, idle_w=10.0, time_s=3.0, parts_key="z", share=0.5)
    assert (e.total_j, e.marginal_j) == (35.0, 20.0)  # 50 - 30 = 20; 20 + 30 x 0.5
    none = split_idle({"a": 5.0}, idle_w=None, time_s=3.0, parts_key="z")
    assert (none.total_j, none.marginal_j) == (5.0, 5.0)


def test_meter_suite_imports_without_pytest() -> None:
    import subprocess
    import sys

    code = "import sys; sys.modules['pytest'] = None; import wattlm.testing.meter_suite"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
