"""The HTTP layer on a scripted engine: usage and energy, statuses, disconnects, drain."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from openai import AsyncOpenAI, OpenAI

from wattlm.serve._http import http_client_module
from wattlm.testing.meters import FakeMeter

from .conftest import ScriptedEngine

httpx = http_client_module()


def test_completion_usage_carries_cached_tokens_and_the_windows_energy(make_server):
    """One request, one window (closed when it ends): it gets the window's 4.5 J."""
    engine = ScriptedEngine(cached=3)
    bs = make_server(engine, FakeMeter(energies_j=[4.5, 0.0, 0.0]))
    client = OpenAI(base_url=bs.url + "/v1", api_key="none")
    reply = client.completions.create(model="m", prompt="a b c d e", max_tokens=4)
    assert reply.choices[0].text == " t1 t2 t3 t4"
    assert reply.choices[0].finish_reason == "length"
    usage = reply.usage.model_dump()
    assert usage["prompt_tokens"] == 5 and usage["completion_tokens"] == 4
    assert usage["prompt_tokens_details"]["cached_tokens"] == 3
    assert usage["energy_j"] == pytest.approx(4.5)
    assert usage["energy_marginal_j"] == pytest.approx(4.5)  # the fake meter has no idle
    assert usage["energy_source"] == "fake"
    assert usage["attribution"] == "token-share-v1"
    assert reply.model == "scripted.gguf"


def test_chat_stream_ends_with_usage_and_done(make_server):
    bs = make_server(ScriptedEngine(), FakeMeter(energies_j=[2.0, 0.0, 0.0]))
    client = OpenAI(base_url=bs.url + "/v1", api_key="none")
    chunks = list(
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi there"}], max_tokens=3, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == " t1 t2 t3"
    assert chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].usage.model_dump()["energy_j"] == pytest.approx(2.0)


def test_bad_input_statuses(make_server):
    bs = make_server(ScriptedEngine(), api_key="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    url = bs.url + "/v1/completions"
    r = httpx.post(url, json={"prompt": "hi"})
    assert r.status_code == 401 and "no API key" in r.json()["error"]["message"]
    r = httpx.post(url, json={"prompt": "hi"}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "wrong API key" in r.json()["error"]["message"]
    r = httpx.post(url, content=b'{"prompt": ', headers=auth)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(url, json={"max_tokens": 3}, headers=auth)
    assert r.status_code == 400 and "prompt must be" in r.json()["error"]["message"]
    r = httpx.post(url, json={"prompt": "hi", "max_tokens": 0}, headers=auth)
    assert r.status_code == 400 and "max_tokens must be" in r.json()["error"]["message"]
    r = httpx.post(url, json={"prompt": "TOO LONG"}, headers=auth)
    assert r.status_code == 400 and "limit is 64 tokens" in r.json()["error"]["message"]
    r = httpx.post(bs.url + "/v1/chat/completions", json={"messages": []}, headers=auth)
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    assert httpx.get(bs.url + "/v1/models").status_code == 401
    models = httpx.get(bs.url + "/v1/models", headers=auth).json()
    assert models["data"][0]["id"] == "scripted.gguf"
    assert models["data"][0]["meta"]["energy_source"] == "fake"
    assert httpx.get(bs.url + "/health").json()["status"] == "ok"  # no key needed


def test_full_queue_gets_429_and_none_is_lost(make_server):
    """500 requests, 64 at a time, on 2 slots + 6 queued: each is answered 200 or 429."""
    engine = ScriptedEngine(delay_s=0.002)
    bs = make_server(engine, slots=2, max_queue=6)

    async def burst() -> list[int]:
        limit = asyncio.Semaphore(64)
        async with httpx.AsyncClient(base_url=bs.url, timeout=30) as client:

            async def one(i: int) -> int:
                async with limit:
                    r = await client.post(
                        "/v1/completions", json={"prompt": f"p {i}", "max_tokens": 3}
                    )
                    if r.status_code == 429:
                        assert "slots are busy" in r.json()["error"]["message"]
                        assert r.headers["retry-after"] == "1"
                    return r.status_code

            return await asyncio.gather(*(one(i) for i in range(500)))

    statuses = asyncio.run(burst())
    assert len(statuses) == 500
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) == engine.completed > 0
    assert statuses.count(429) > 0
    metrics = httpx.get(bs.url + "/metrics").text
    assert f'status="200"}} {float(statuses.count(200))}' in metrics
    assert f'status="429"}} {float(statuses.count(429))}' in metrics
    assert "wattlm_serve_requests_in_flight 0.0" in metrics


def test_a_client_that_disconnects_mid_stream_frees_its_slot(make_server):
    engine = ScriptedEngine(delay_s=0.05)
    bs = make_server(engine, slots=1, max_queue=0)
    with httpx.stream(
        "POST", bs.url + "/v1/completions", json={"prompt": "a", "max_tokens": 200, "stream": True}
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break  # one chunk, then hang up
    deadline = time.monotonic() + 10
    while engine.closed < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.closed == 1 and engine.completed == 0  # the engine's stream was closed
    assert httpx.get(bs.url + "/health").json()["in_flight"] == 0
    r = httpx.post(bs.url + "/v1/completions", json={"prompt": "b", "max_tokens": 2})
    assert r.status_code == 200  # the only slot is free again
    assert 'status="499"' in httpx.get(bs.url + "/metrics").text


def test_drain_finishes_in_flight_requests_and_refuses_new_ones(make_server):
    engine = ScriptedEngine(delay_s=0.02)
    bs = make_server(engine)
    result: dict[str, object] = {}

    def long_request() -> None:
        r = httpx.post(bs.url + "/v1/completions", json={"prompt": "a", "max_tokens": 40})
        result["status"] = r.status_code
        result["text"] = r.json()["choices"][0]["text"]

    worker = threading.Thread(target=long_request)
    worker.start()
    while engine.started < 1:
        time.sleep(0.01)
    with httpx.Client(base_url=bs.url) as client:
        assert client.get("/health").status_code == 200  # keep-alive connection open
        bs.drain()
        time.sleep(0.1)
        try:
            refused = client.post("/v1/completions", json={"prompt": "b"}).status_code
        except httpx.TransportError:
            refused = "closed"
    worker.join(10)
    assert result["status"] == 200
    assert result["text"].split()[-1] == "t40"  # finished, not cut
    assert refused in (503, "closed")
    bs._thread.join(10)
    assert not bs._thread.is_alive()


def test_energy_of_concurrent_requests_adds_up_to_the_metered_energy(make_server):
    """Power 10 W on a wall clock: attributed + idle + carried = metered, each > 0."""
    bs = make_server(ScriptedEngine(delay_s=0.005), FakeMeter(power_w=10.0), window_s=0.05)

    async def run() -> list[float]:
        client = AsyncOpenAI(base_url=bs.url + "/v1", api_key="none")
        replies = await asyncio.gather(
            *(client.completions.create(model="m", prompt="a b c", max_tokens=8) for _ in range(6))
        )
        return [r.usage.model_dump()["energy_j"] for r in replies]

    energies = asyncio.run(run())
    assert all(e > 0 for e in energies)
    totals = bs.windows.totals()
    metered = 10.0 * totals["metered_s"]
    for view in ("energy_j", "energy_marginal_j"):  # no idle power: both views equal
        parts = sum(totals[k].get(view, 0.0) for k in ("attributed_j", "idle_j", "carried_j"))
        assert parts == pytest.approx(metered, rel=1e-9)
    assert sum(energies) <= totals["attributed_j"]["energy_j"] + 1e-9
    json.dumps(totals)  # JSON-ready
