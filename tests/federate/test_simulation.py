"""Federated runs on Flower's simulation runtime (Ray) with a tiny classifier."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")

from wattlm.federate.codec import record_bytes, to_record
from wattlm.federate.local import get_arrays, load_global_model
from wattlm.federate.run import federate
from wattlm.report.result import validate_result


def test_two_clients_one_round_writes_a_valid_record(tiny_setup, tmp_path, fed_config):
    cfg = fed_config(tiny_setup, clients=2, rounds=1)
    result = federate(cfg, tmp_path / "run", progress=False)
    on_disk = json.loads((tmp_path / "run" / "federate.json").read_text())
    validate_result(on_disk)
    assert on_disk["kind"] == "federate" and (tmp_path / "run" / "report.html").is_file()
    (rnd,) = result["rounds"]
    assert [c["partition"] for c in rnd["clients"]] == [0, 1]
    assert rnd["aggregated"] == 2 and rnd["failed"] == []
    weights = get_arrays(load_global_model(cfg).model)
    payload = 4 * sum(a.size for a in weights.values())
    for c in rnd["clients"]:
        assert c["status"] == "ok" and c["rows"] == 20 and c["steps"] == 3
        assert c["energy_j"] > 0 and c["energy_source"].startswith("estimate:")
        assert payload < c["uplink_bytes"] < payload + 1_000 * len(weights)  # headers: ids, npy
        # the global model went down with the config: at least the weights' own record
        assert c["downlink_bytes"] > record_bytes(to_record(weights))
    t = result["totals"]
    assert t["bytes"] == sum(c["uplink_bytes"] + c["downlink_bytes"] for c in rnd["clients"])
    expected = sum(c["energy_j"] for c in rnd["clients"]) + rnd["server"]["aggregate_energy_j"]
    assert t["energy_j"] == pytest.approx(expected)
    assert [p["rounds_ok"] for p in result["per_client"]] == [1, 1]
    # `wattlm report` renders the run again, from the folder alone
    from typer.testing import CliRunner

    from wattlm.cli.main import app

    (tmp_path / "run" / "report.md").unlink()
    reply = CliRunner().invoke(app, ["report", str(tmp_path / "run"), "--no-print"])
    assert reply.exit_code == 0, reply.output
    md = (tmp_path / "run" / "report.md").read_text()
    assert md.startswith("# wattlm federate") and f"{t['energy_j']:.1f}"[:3] in md


@pytest.mark.slow
def test_crashed_and_corrupt_clients_do_not_end_the_run_and_a_killed_run_resumes(
    tiny_setup, tmp_path, fed_config
):
    from wattlm.federate.server import AbortedRun

    cfg = fed_config(
        tiny_setup,
        clients=3,
        rounds=2,
        compression="int8",
        faults=("crash@1:1", "nan@1:2", "abort@2:0"),
    )
    out = tmp_path / "run"
    with pytest.raises(AbortedRun):
        federate(cfg, out, progress=False)
    assert not (out / "federate.json").exists()
    result = federate(cfg, out, resume=True, progress=False)
    assert [r["round"] for r in result["rounds"]] == [1, 2]
    assert result["resumed_after"] == [1]
    first = {c["partition"]: c for c in result["rounds"][0]["clients"]}
    assert first[0]["status"] == "ok"
    assert first[1]["status"] == "failed" and "injected crash" in first[1]["reason"]
    assert first[2]["status"] == "rejected" and "non-finite" in first[2]["reason"]
    assert result["rounds"][0]["aggregated"] == 1 and result["rounds"][0]["failed"] == [1, 2]
    assert result["rounds"][1]["aggregated"] == 3
    assert [p["rounds_failed"] for p in result["per_client"]] == [0, 1, 1]


@pytest.mark.slow
def test_causal_lm_with_lora_sends_only_adapters_and_compares_to_central(
    tiny_text_setup, tmp_path, fed_config
):
    cfg = fed_config(
        tiny_text_setup,
        clients=2,
        rounds=1,
        batch_size=4,
        seq_len=32,
        lora=True,
        lora_targets=("q_proj", "v_proj"),
        lora_rank=2,
        compare_central=True,
        target=1e9,  # any perplexity reaches it: checks the direction of the comparison
    )
    result = federate(cfg, tmp_path / "run", progress=False)
    assert result["initial_quality"]["metric"] == "perplexity"
    assert result["data"]["task"] == "causal-lm"
    assert [c["rows"] for c in result["data"]["clients"]] == [4, 4]  # whole articles
    m = result["model"]
    assert m["travelling_parameters"] < m["parameters"] / 10  # adapters only
    (rnd,) = result["rounds"]
    assert all(c["status"] == "ok" for c in rnd["clients"])
    assert all(c["uplink_bytes"] < 4 * m["travelling_parameters"] + 20_000 for c in rnd["clients"])
    assert result["totals"]["to_target"]["reached"] and result["totals"]["to_target"]["round"] == 1
    assert result["central"]["metric"] == "perplexity" and result["central"]["to_target"]["reached"]


@pytest.mark.slow
def test_a_client_past_the_round_timeout_is_recorded_and_left_out(tiny_setup, tmp_path, fed_config):
    cfg = fed_config(tiny_setup, clients=2, rounds=1, timeout_s=40.0, faults=("slow@1:0",))
    result = federate(cfg, tmp_path / "run", progress=False)
    (rnd,) = result["rounds"]
    late, ok = rnd["clients"]
    assert late["partition"] == 0 and late["status"] == "failed"
    assert late["reason"] == "no reply before the round timeout" and late["uplink_bytes"] == 0
    assert ok["status"] == "ok" and rnd["aggregated"] == 1 and rnd["failed"] == [0]


@pytest.mark.slow
def test_a_resumed_topk_run_gives_clients_their_checkpointed_residuals(
    tiny_setup, tmp_path, fed_config
):
    from wattlm.federate.checkpoint import residual_folder
    from wattlm.federate.residuals import stored_rounds
    from wattlm.federate.server import AbortedRun

    cfg = fed_config(tiny_setup, clients=2, rounds=2, compression="topk", faults=("abort@2:0",))
    out = tmp_path / "run"
    with pytest.raises(AbortedRun):
        federate(cfg, out, progress=False)
    assert stored_rounds(residual_folder(out)) == {0: [1], 1: [1]}
    result = federate(cfg, out, resume=True, progress=False)
    assert result["resumed_after"] == [1]
    first, second = ([c["residual_round"] for c in r["clients"]] for r in result["rounds"])
    assert first == [0, 0] and second == [1, 1]  # round 2 ran in new contexts
    assert all(c["residual_stored"] for r in result["rounds"] for c in r["clients"])
    assert stored_rounds(residual_folder(out)) == {0: [2], 1: [2]}
    assert "saved by every client" in result["notes"][-1]
