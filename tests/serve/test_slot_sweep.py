"""``wattlm loadtest --serve MODEL --slots ...``: bad input, the sweep's bookkeeping, and one
end-to-end sweep against real child servers on a tiny GGUF."""

from __future__ import annotations

import json

import pytest

from wattlm.cli.main import main
from wattlm.errors import WattlmError
from wattlm.serve import slotsweep
from wattlm.serve.loadtest import LoadConfig
from wattlm.serve.slotchoice import choose_slots
from wattlm.serve.slotsweep import SweepConfig, run_slot_sweep, serve_command

TEXT = " ".join(f"w{i}" for i in range(2000))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n\n".join(f"paragraph {i} " + TEXT[:400] for i in range(40)))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--serve", "{gguf}", "--slots", "1,0", "--rate", "2"], "--slots values must be integers >= 1, got [1, 0]"),
        (["--serve", "{gguf}", "--slots", "2,-4", "--rate", "2"], "--slots values must be integers >= 1"),
        (["--serve", "{gguf}", "--slots", "two", "--rate", "2"], "--slots must be integers separated by commas"),
        (["--serve", "{gguf}", "--slots", "2,2", "--rate", "2"], "--slots repeats a value"),
        (["--serve", "{gguf}", "--rate", "2", "--slo-p99-ms", "0"], "--slo-p99-ms must be > 0, got 0"),
        (["--serve", "{gguf}", "--rate", "2", "--slo-p99-ms", "-5"], "--slo-p99-ms must be > 0"),
        (["http://127.0.0.1:9", "--serve", "{gguf}", "--rate", "2"], "give either a URL"),
        (["http://127.0.0.1:9", "--slo-p99-ms", "500"], "--slo-p99-ms applies only with --serve"),
        (["http://127.0.0.1:9", "--slots", "1,2"], "--slots applies only with --serve"),
        (["--rate", "2"], "give a server URL or --serve MODEL"),
        (["--serve", "{gguf}", "--rate", "2,4"], "a slot sweep needs one --rate, got [2.0, 4.0]"),
        (["--serve", "{gguf}"], "a slot sweep needs one --rate, got none"),
        (["--serve", "{gguf}", "--rate", "2", "--server-pid", "1"], "--server-pid does not go with --serve"),
        (["--serve", "{missing}", "--rate", "2"], "GGUF file not found"),
        (["--serve", "{gguf}", "--rate", "2", "--threads", "0"], "threads must be an integer >= 1"),
    ],
)  # fmt: skip
def test_bad_sweep_input_is_one_line_and_exit_2(tmp_path, text_file, capsys, args, message):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    paths = {"gguf": str(gguf), "missing": str(tmp_path / "missing.gguf")}
    argv = ["loadtest", *[a.format(**paths) for a in args], "--out", str(tmp_path / "o")]
    assert main([*argv, "--text", str(text_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()  # nothing started, nothing written


def test_a_model_the_server_cannot_load_is_one_line_and_exit_2(tmp_path, text_file, capsys):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a GGUF file")
    argv = ["loadtest", "--serve", str(bad), "--slots", "1,2", "--rate", "2", "--meter", "null",
            "--out", str(tmp_path / "o"), "--text", str(text_file)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        f"wattlm serve {bad} --slots 1 --meter null did not start:" in err
        and "serve-slots-1.log" in err
    )
    assert not (tmp_path / "o" / "loadtest.json").exists()


def test_serve_command_quotes_the_model_and_keeps_the_options():
    cfg = SweepConfig(model="my models/a.gguf", slots=(1, 4), threads=3, context_tokens=512)
    assert serve_command(cfg, 4) == (
        "wattlm serve 'my models/a.gguf' --slots 4 --threads 3 --context-tokens 512"
    )
    assert serve_command(SweepConfig(model="m.gguf"), 2) == "wattlm serve m.gguf --slots 2"


def _fake_level(p99_by_slots, failing=()):
    def one_level(cfg, load, text, slots, log_dir):
        if slots in failing:
            raise WattlmError(f"wattlm serve m.gguf --slots {slots} did not start: out of memory")
        entry = {
            "slots": slots, "requests": load.requests, "ok": load.requests, "lost": 0,
            "errors": {}, "e2e_latency_p99_ms": p99_by_slots[slots],
            "server_j_per_request": 1.0 / slots, "server_j_per_request_ci95": None,
            "meter_j_per_request": None, "meter_j_per_request_ci95": None,
        }  # fmt: skip
        return {"rate": load.rates[0], "slots": slots, "summary": {}, "requests": [],
                "server": {"id": "m.gguf"}, "meter": None, "exit_code": 0, "entry": entry}  # fmt: skip

    return one_level


def test_a_later_server_that_does_not_start_is_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(slotsweep, "check_servable", lambda cfg: None)
    monkeypatch.setattr(slotsweep, "_one_level", _fake_level({1: 50.0, 2: 40.0}, failing={4}))
    cfg = SweepConfig(model="m.gguf", slots=(1, 2, 4), slo_p99_ms=45.0)
    load = LoadConfig(url="http://127.0.0.1:1", requests=3, rates=(2.0,))
    seen: list[int] = []
    record = run_slot_sweep(
        cfg, load, TEXT, log_dir=tmp_path, on_level=lambda e: seen.append(e["slots"])
    )
    assert seen == [1, 2, 4]
    failed = record["sweep"]["levels"][2]
    assert (failed["lost"], failed["errors"]) == (3, {"server_start": 1})
    assert "out of memory" in record["levels"][2]["start_error"]
    assert (
        record["choice"]["slots"] == 2
        and record["choice"]["command"] == "wattlm serve m.gguf --slots 2"
    )
    assert "url" not in record["config"] and record["config"]["sweep"]["slots"] == [1, 2, 4]


def test_the_first_server_failing_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setattr(slotsweep, "check_servable", lambda cfg: None)
    monkeypatch.setattr(slotsweep, "_one_level", _fake_level({}, failing={1, 2}))
    cfg = SweepConfig(model="m.gguf", slots=(1, 2))
    load = LoadConfig(url="http://127.0.0.1:1", requests=3, rates=(2.0,))
    with pytest.raises(WattlmError, match="--slots 1 did not start: out of memory"):
        run_slot_sweep(cfg, load, TEXT, log_dir=tmp_path)


@pytest.mark.slow
def test_a_two_level_sweep_against_real_child_servers(tmp_path, text_file, capsys):
    for module in ("xllamacpp", "fastapi", "uvicorn", "openai"):
        pytest.importorskip(module)
    from wattlm.export.gguf_writer import export_gguf
    from wattlm.testing.tiny import tiny_causal_lm

    lm = tiny_causal_lm(seed=4)
    gguf = export_gguf(lm.model, lm.tokenizer, tmp_path / "tiny.gguf", qtype="f32")
    out = tmp_path / "sweep"
    argv = ["loadtest", "--serve", str(gguf), "--slots", "1,2", "--rate", "4",
            "--slo-p99-ms", "60000", "--requests", "5", "--concurrency", "3",
            "--prompt-words", "4..8", "--max-tokens", "2..4", "--threads", "1",
            "--context-tokens", "128", "--meter", "estimate", "--time-limit", "120",
            "--text", str(text_file), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    progress = [ln for ln in stdout.splitlines() if ln.startswith("slots ")]
    assert [ln.split(":")[0] for ln in progress] == ["slots 1", "slots 2"]
    assert all("5/5 ok" in ln and "J/request (meter)" in ln for ln in progress)
    data = json.loads((out / "loadtest.json").read_text())
    sweep = data["sweep"]
    assert sweep["rate"] == 4.0 and sweep["slo_p99_ms"] == 60000.0
    assert sweep["latency"].startswith("end-to-end request latency")
    assert [e["slots"] for e in sweep["levels"]] == [1, 2]
    for e, level in zip(sweep["levels"], data["levels"], strict=True):
        assert (e["ok"], e["lost"], e["errors"]) == (5, 0, {})
        assert 0 < e["e2e_latency_p50_ms"] <= e["e2e_latency_p95_ms"] <= e["e2e_latency_p99_ms"]
        assert 0 < e["ttft_p99_ms"] <= e["e2e_latency_p99_ms"]
        assert e["server_j_per_request"] > 0 and e["meter_j_per_request"] > 0
        lo, hi = e["server_j_per_request_ci95"]
        assert lo <= e["server_j_per_request"] <= hi
        assert level["server"]["meta"]["slots"] == e["slots"]  # each level had its own server
        assert level["exit_code"] == 0  # stopped cleanly by SIGTERM
        assert level["summary"]["meter_source"].startswith("estimate")
    choice = data["choice"]
    assert choice["meets_slo"] is True and choice["energy_from"] == "meter"
    assert choice["slots"] == choose_slots(sweep["levels"], 60000.0)["slots"]
    assert choice["command"] == (
        f"wattlm serve {gguf} --slots {choice['slots']} --threads 1 --context-tokens 128"
    )
    assert f"choice: {choice['command']}" in stdout
    md = (out / "loadtest.md").read_text()
    assert "## Choice" in md and choice["command"] in md
    assert (out / "serve-slots-1.log").exists() and (out / "serve-slots-2.log").exists()
    assert "api_key" not in json.dumps(data["config"]["sweep"])
    assert choose_slots(sweep["levels"], 0.001)["meets_slo"] is False
