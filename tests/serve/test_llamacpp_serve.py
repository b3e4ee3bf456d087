"""``wattlm serve`` on the real SmolLM2 GGUF: prefix cache, energy, disconnects, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wattlm.serve._http import http_client_module
from wattlm.serve.config import ServeConfig
from wattlm.serve.runner import BackgroundServer

httpx = http_client_module()

PREFIX = (
    "You are a careful assistant who answers questions about history, science and geography "
    "in short, plain sentences, and who says so when a question has no clear answer. "
) * 3


def smollm2_gguf() -> Path:
    pytest.importorskip("xllamacpp")
    from wattlm.assets import asset_path, is_cached

    if not is_cached("smollm2-135m"):
        pytest.skip("asset smollm2-135m not fetched (run `wattlm assets fetch smollm2-135m`)")
    return asset_path("smollm2-135m")


@pytest.fixture(scope="module")
def server():
    cfg = ServeConfig(
        model=str(smollm2_gguf()), slots=2, threads=1, context_tokens=512, port=0,
        meter="estimate", window_s=0.25,
    )  # fmt: skip
    bs = BackgroundServer(cfg)
    bs.start()
    yield bs
    bs.stop(30)


def _complete(url: str, prompt: str, **extra) -> dict:
    r = httpx.post(
        url + "/v1/completions", json={"prompt": prompt, "max_tokens": 4, **extra}, timeout=120
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.assets
def test_a_shared_prefix_is_computed_once(server):
    first = _complete(server.url, PREFIX + "Question: where is Paris?")
    second = _complete(server.url, PREFIX + "Question: what is water made of?")
    u1, u2 = first["usage"], second["usage"]
    assert u1["prompt_tokens_details"]["cached_tokens"] == 0
    assert u2["prompt_tokens_details"]["cached_tokens"] >= 60  # the prefix's tokens
    assert u2["prompt_tokens_details"]["cached_tokens"] < u2["prompt_tokens"]
    for u in (u1, u2):
        assert u["energy_j"] > 0 and u["energy_source"].startswith("estimate:")
        assert u["attribution"] == "token-share-v1"
    metrics = httpx.get(server.url + "/metrics").text
    cached = float(re.search(r"^wattlm_serve_prompt_tokens_cached_total (\S+)", metrics, re.M)[1])
    assert cached >= u2["prompt_tokens_details"]["cached_tokens"]


@pytest.mark.assets
def test_chat_stream_and_context_limit(server):
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions", timeout=120,
        json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 5, "stream": True},
    ) as r:  # fmt: skip
        lines = [ln for ln in r.iter_lines() if ln.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    assert '"energy_j"' in lines[-2] and '"completion_tokens": 5' in lines[-2]
    r = httpx.post(server.url + "/v1/completions", json={"prompt": "word " * 700}, timeout=60)
    assert r.status_code == 400
    assert "context limit is 512 tokens" in r.json()["error"]["message"]


@pytest.mark.assets
def test_a_disconnected_stream_frees_its_llamacpp_slot(server):
    state = server.app.state.serve
    with httpx.stream(
        "POST", server.url + "/v1/completions", timeout=120,
        json={"prompt": "Once upon a time", "max_tokens": 400, "stream": True},
    ) as r:  # fmt: skip
        for n, line in enumerate(r.iter_lines()):
            if line.startswith("data:") and n > 3:
                break
    deadline = time.monotonic() + 20
    while state.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.in_flight == 0
    slots = _llama_slots(server)
    deadline = time.monotonic() + 20
    while any(s["is_processing"] for s in slots) and time.monotonic() < deadline:
        time.sleep(0.1)
        slots = _llama_slots(server)
    assert not any(s["is_processing"] for s in slots)


def _llama_slots(server) -> list[dict]:
    """llama.cpp's own /slots view, read with the engine's private key."""
    engine = server.app.state.engine
    headers = {"Authorization": f"Bearer {engine._key}"}
    return httpx.get(engine.base_url + "/slots", headers=headers, timeout=30).json()


@pytest.mark.assets
def test_sigterm_drains_in_flight_requests(tmp_path):
    gguf = smollm2_gguf()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattlm", "serve", str(gguf), "--port", "0", "--slots", "1",
         "--threads", "1", "--context-tokens", "256", "--meter", "null", "--drain-s", "300"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stderr.readline()
        url = re.search(r"at (http://\S+)/v1", line)[1]
        result: dict = {}

        def request() -> None:
            result["reply"] = _complete(url, "The history of Rome", max_tokens=12, ignore_eos=True)

        worker = threading.Thread(target=request)
        worker.start()
        while httpx.get(url + "/health").json()["in_flight"] == 0:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        worker.join(300)
        assert proc.wait(60) == 0
        usage = result["reply"]["usage"]
        assert usage["completion_tokens"] == 12  # finished, not cut by the shutdown
        assert usage["energy_source"] == "unavailable" and usage["energy_j"] is None
    finally:
        if proc.poll() is None:
            proc.kill()
