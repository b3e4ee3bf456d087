"""The energy view an optimize run reads: config option and the metrics it selects."""

from __future__ import annotations

import pytest

from wattlm.errors import WattlmError
from wattlm.search.config import OptimizeConfig
from wattlm.search.metrics import metrics_from_result
from wattlm.testing.results import sample_bench_result


def _one_run(**kwargs):
    result = sample_bench_result(energy_source="rapl", **kwargs)
    result["runs"] = result["runs"][:1]
    return result


def test_config_default_total_and_marginal_round_trips() -> None:
    assert OptimizeConfig().energy_view == "total"
    cfg = OptimizeConfig(energy_view="marginal")
    assert OptimizeConfig.from_dict(cfg.to_dict()).energy_view == "marginal"
    assert cfg.study_fingerprint({}) != OptimizeConfig().study_fingerprint({})


def test_config_unknown_view_is_one_clear_error() -> None:
    with pytest.raises(WattlmError, match=r"unknown energy view 'idle' \(choose from: total"):
        OptimizeConfig(energy_view="idle")


def test_metrics_read_the_chosen_view() -> None:
    r = _one_run()
    run = r["runs"][0]
    total = metrics_from_result(r, objective="decode-energy", weight_bytes=1)
    marginal = metrics_from_result(
        r, objective="decode-energy", weight_bytes=1, energy_view="marginal"
    )
    dec = run["decode"]
    assert total["objective"]["median"] == dec["energy_j_per_token"]["median"]
    assert marginal["objective"]["median"] == dec["energy_marginal_j_per_token"]["median"]
    # rapl sample: marginal = total - 4.2 W x window time, so it is strictly lower
    assert marginal["objective"]["median"] < total["objective"]["median"]


def test_request_energy_marginal_by_hand() -> None:
    r = _one_run()
    run = r["runs"][0]
    req = metrics_from_result(r, objective="request-energy", weight_bytes=1, energy_view="marginal")
    per_request = sorted(
        (p["energy_marginal_j"] + d["energy_marginal_j"]) / run["batch_size"]
        for p, d in zip(run["samples"]["prefill"], run["samples"]["decode"], strict=True)
    )
    assert req["objective"]["median"] == pytest.approx(per_request[len(per_request) // 2])


def test_old_results_have_no_marginal_figures() -> None:
    m = metrics_from_result(
        _one_run(schema_version=1), objective="decode-energy", weight_bytes=1,
        energy_view="marginal",
    )  # fmt: skip
    assert m["objective"] is None and m["request_energy_j"] is None
