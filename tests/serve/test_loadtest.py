"""Load generation: workloads, statistics, and a full loadtest against a scripted server."""

from __future__ import annotations

import json

import pytest

from wattlm.cli.main import main
from wattlm.errors import WattlmError
from wattlm.serve.loadrun import RequestRecord
from wattlm.serve.loadstats import percentiles, summarise
from wattlm.serve.loadtest import LoadConfig, run_loadtest, write_loadtest
from wattlm.serve.workload import make_workload, parse_range
from wattlm.testing.meters import FakeMeter

from .conftest import ScriptedEngine

TEXT = " ".join(f"w{i}" for i in range(2000))


def test_poisson_workload_is_seeded_and_has_the_asked_mean_gap():
    a = make_workload(TEXT, requests=400, prompt_words=(5, 9), max_tokens=(2, 6), rate=4.0, seed=3)
    b = make_workload(TEXT, requests=400, prompt_words=(5, 9), max_tokens=(2, 6), rate=4.0, seed=3)
    assert a == b
    mean_gap = a[-1].at_s / (len(a) - 1)
    assert mean_gap == pytest.approx(0.25, rel=0.15)  # 1/rate
    assert {len(r.prompt.split()) for r in a} == set(range(5, 10))
    assert {r.max_tokens for r in a} == set(range(2, 7))


def test_shared_prefix_starts_every_prompt_and_no_rate_sends_at_once():
    w = make_workload(TEXT, requests=5, prompt_words=(3, 3), max_tokens=(1, 1), prefix_words=50)
    prefix = " ".join(TEXT.split()[:50])
    assert all(r.prompt.startswith(prefix + " ") for r in w)
    assert len({r.prompt for r in w}) == 5
    assert [r.at_s for r in w] == [0.0] * 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests": 0}, "--requests must be >= 1"),
        ({"rate": 0.0}, "--rate must be > 0"),
        ({"arrival": "burst"}, "unknown arrival"),
        ({"prompt_words": (5, 3)}, "prompt words must be MIN..MAX"),
        ({"prefix_words": 1999}, "the text has 2000 words"),
    ],
)
def test_bad_workloads_are_refused(kwargs, message):
    args = {"requests": 2, "prompt_words": (2, 4), "max_tokens": (1, 2), **kwargs}
    with pytest.raises(WattlmError, match=message):
        make_workload(TEXT, **args)


def test_parse_range():
    assert parse_range("7", "x") == (7, 7)
    assert parse_range("3..9", "x") == (3, 9)
    with pytest.raises(WattlmError, match="N or MIN..MAX"):
        parse_range("a..b", "--max-tokens")


def test_summary_figures_by_hand():
    recs = [
        RequestRecord(0, 0.0, "ok", latency_s=1.0, ttft_s=0.1, token_gaps_s=[0.01, 0.03],
                      prompt_tokens=10, cached_tokens=4, completion_tokens=3, energy_j=3.0),
        RequestRecord(1, 0.1, "ok", latency_s=2.0, ttft_s=0.3, token_gaps_s=[0.02],
                      prompt_tokens=10, cached_tokens=0, completion_tokens=2, energy_j=1.0),
        RequestRecord(2, 0.2, "http_429"),
        RequestRecord(3),
    ]  # fmt: skip
    s = summarise(recs, wall_s=4.0, meter_energy_j=10.0, meter_source="fake")
    assert (s["requests"], s["sent"], s["ok"]) == (4, 3, 2)
    assert s["errors"] == {"http_429": 1, "not_sent": 1}
    assert s["requests_per_s"] == 0.5 and s["output_tokens_per_s"] == 1.25
    assert s["ttft"]["p50_ms"] == pytest.approx(200.0)
    assert s["per_token"]["p50_ms"] == pytest.approx(20.0)
    assert s["server_energy_j_per_request"] == 2.0
    assert s["server_energy_j_per_token"] == pytest.approx(4.0 / 5)
    assert s["meter_energy_j_per_request"] == 5.0 and s["meter_energy_j_per_token"] == 2.0
    assert s["cached_prompt_tokens"] == 4
    assert percentiles([]) == {"p50_ms": None, "p95_ms": None, "p99_ms": None}


def test_loadtest_sweep_against_a_scripted_server(make_server, tmp_path):
    bs = make_server(
        ScriptedEngine(delay_s=0.001, cached=2), FakeMeter(power_w=5.0), window_s=0.05,
        api_key="k",
    )  # fmt: skip
    cfg = LoadConfig(
        url=bs.url, requests=12, concurrency=3, rates=(50.0, 200.0), prompt_words=(4, 8),
        max_tokens=(2, 5), prefix_words=3, api_key="k", time_limit_s=60,
    )  # fmt: skip
    record = run_loadtest(cfg, TEXT)
    json_path, md_path = write_loadtest(record, tmp_path / "load")
    data = json.loads(json_path.read_text())
    assert data["kind"] == "loadtest" and data["config"]["api_key"] == "set"
    assert [lv["rate"] for lv in data["levels"]] == [50.0, 200.0]
    for level in data["levels"]:
        s = level["summary"]
        assert s["ok"] == 12 and s["errors"] == {}
        assert s["cached_prompt_tokens"] == 24
        assert s["server_energy_j"] > 0 and s["server_energy_source"] == "fake"
        assert s["ttft"]["p99_ms"] is not None and len(level["requests"]) == 12
    assert data["server"]["meta"]["attribution"] == "token-share-v1"
    md = md_path.read_text()
    assert "| 50.00 | 12/12 |" in md and "| 200.00 | 12/12 |" in md


def test_cli_loadtest_without_a_server_is_a_one_line_error(tmp_path, capsys):
    text = tmp_path / "prompts.txt"
    text.write_text("\n\n".join(f"paragraph {i} " + TEXT[:400] for i in range(40)))
    rc = main(["loadtest", "http://127.0.0.1:9", "--out", str(tmp_path), "--text", str(text)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no OpenAI-compatible server answers" in err


def test_cli_loadtest_rejects_a_bad_url(tmp_path, capsys):
    assert main(["loadtest", "ftp://host", "--out", str(tmp_path)]) == 2
    assert "not a server URL" in capsys.readouterr().err


def test_sweep_levels_cut_different_prompts():
    args = {"requests": 4, "prompt_words": (5, 5), "max_tokens": (1, 1), "prefix_words": 10}
    first = make_workload(TEXT, **args)
    second = make_workload(TEXT, offset_words=4 * 5, **args)
    assert not {r.prompt for r in first} & {r.prompt for r in second}
    assert second[0].prompt.split()[10] == "w30"  # prefix w0..w9, then 20 words on


def test_no_cache_asks_the_server_to_evaluate_every_prompt_token(make_server):
    bs = make_server(ScriptedEngine(cached=3), FakeMeter(power_w=1.0))
    base = {"url": bs.url, "requests": 3, "concurrency": 2, "prompt_words": (5, 5),
            "max_tokens": (2, 2)}  # fmt: skip
    on = run_loadtest(LoadConfig(**base), TEXT)["levels"][0]["summary"]
    off = run_loadtest(LoadConfig(**base, cache_prompt=False), TEXT)["levels"][0]["summary"]
    assert (on["cached_prompt_tokens"], off["cached_prompt_tokens"]) == (9, 0)
    assert on["prompt_tokens"] == off["prompt_tokens"] == 15
