"""Conformance tests every energy meter passes; subclass in a test module.

Example (in ``tests/measure/test_mymeter.py``)::

    from wattlm.testing.meter_suite import MeterConformance

    class TestMyMeter(MeterConformance):
        def make_meter(self):
            return MyMeter(...)

Each test builds a fresh meter with :meth:`MeterConformance.make_meter` (a plain method, so
it may use ``self`` attributes set by an autouse fixture, e.g. a fake sysfs tree).

pytest is imported only when a test runs, so this module imports without it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

from wattlm.errors import WattlmError
from wattlm.measure.base import SOURCE_UNAVAILABLE, EnergyMeter, Measurement
from wattlm.measure.views import VIEWS


@contextlib.contextmanager
def _raises(kind: type[BaseException]) -> Iterator[None]:
    import pytest

    with pytest.raises(kind):
        yield


__all__ = ["MeterConformance"]


def _busy(seconds: float = 0.002) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class MeterConformance:
    """Shared behaviour of :class:`~wattlm.measure.base.EnergyMeter` implementations."""

    def make_meter(self) -> EnergyMeter:
        raise NotImplementedError("subclasses return a fresh meter here")

    def _window(self, meter: EnergyMeter, name: str = "w") -> Measurement:
        meter.begin_window(name)
        _busy()
        return meter.end_window(name)

    def test_is_an_energy_meter(self) -> None:
        assert isinstance(self.make_meter(), EnergyMeter)

    def test_windows_nest(self) -> None:
        meter = self.make_meter()
        meter.begin_window("outer")
        inner = self._window(meter, "inner")
        outer = meter.end_window("outer")
        assert (inner.name, outer.name) == ("inner", "outer")
        assert outer.time_s >= inner.time_s > 0

    def test_window_name_reusable_after_end(self) -> None:
        meter = self.make_meter()
        self._window(meter, "again")
        assert self._window(meter, "again").name == "again"

    def test_double_begin_raises(self) -> None:
        meter = self.make_meter()
        meter.begin_window("w")
        with _raises(WattlmError):
            meter.begin_window("w")

    def test_end_without_begin_raises(self) -> None:
        with _raises(WattlmError):
            self.make_meter().end_window("never")

    def test_time_is_positive(self) -> None:
        assert self._window(self.make_meter()).time_s > 0

    def test_source_is_a_label(self) -> None:
        meter = self.make_meter()
        m = self._window(meter)
        assert isinstance(m.source, str) and m.source.strip()
        assert m.source == meter.source

    def test_energy_none_iff_unavailable(self) -> None:
        m = self._window(self.make_meter())
        assert (m.energy_j is None) == (m.source == SOURCE_UNAVAILABLE)
        if m.energy_j is not None:
            assert m.energy_j >= 0

    def test_cpu_time_and_idle_are_numbers_or_none(self) -> None:
        m = self._window(self.make_meter())
        assert m.cpu_time_s is None or m.cpu_time_s >= 0
        assert m.idle_power_w is None or m.idle_power_w >= 0

    def test_measurement_is_json_serialisable(self) -> None:
        m = self._window(self.make_meter())
        assert json.loads(json.dumps(m.to_dict()))["name"] == "w"
        json.dumps(m.details)

    def test_describe_is_json_serialisable(self) -> None:
        described = self.make_meter().describe()
        assert json.loads(json.dumps(described))["source"]

    def test_both_views_present_and_labelled(self) -> None:
        meter = self.make_meter()
        m = self._window(meter)
        assert set(m.methods) == set(VIEWS) and all(m.methods.values())
        assert meter.describe()["views"] == m.methods
        for view in VIEWS:
            energy = m.energy(view)
            assert (energy is None) == (m.source == SOURCE_UNAVAILABLE)
            assert energy is None or energy >= 0

    def test_marginal_never_exceeds_total(self) -> None:
        m = self._window(self.make_meter())
        if m.energy_j is not None:
            assert m.energy_marginal_j is not None
            assert m.energy_marginal_j <= m.energy_j + 1e-12

    def test_bands_bracket_their_figure(self) -> None:
        m = self._window(self.make_meter())
        for view in VIEWS:
            band, energy = m.band(view), m.energy(view)
            if band is not None:
                assert energy is not None and len(band) == 2
                assert band[0] - 1e-12 <= energy <= band[1] + 1e-12
