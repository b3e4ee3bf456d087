"""A scripted engine (no model) and a server in a thread for the serve tests."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest

from wattlm.serve.config import ServeConfig
from wattlm.serve.llamacpp_engine import UpstreamError
from wattlm.serve.runner import BackgroundServer
from wattlm.serve.windows import WindowedMeter
from wattlm.testing.meters import FakeMeter

SERVE_DEPS = ("fastapi", "uvicorn", "openai", "prometheus_client")
if any(importlib.util.find_spec(m) is None for m in SERVE_DEPS):
    # the HTTP tests need the serve extra; the attribution tests run without it
    collect_ignore = [
        "test_app.py",
        "test_loadtest.py",
        "test_llamacpp_serve.py",
        "test_cli.py",
        "test_torch_engine.py",
    ]


class ScriptedEngine:
    """Streams ``new_tokens`` chunks per request with llama.cpp-shaped ``timings``.

    A prompt of ``"x" * n`` words counts ``n`` prompt tokens; with ``cached`` set, that many
    of them are reported as cache hits. ``delay_s`` sleeps before each token; a prompt
    containing ``"TOO LONG"`` is refused as llama.cpp refuses an over-long prompt.
    """

    name = "scripted"

    def __init__(self, *, delay_s: float = 0.0, cached: int = 0) -> None:
        self.delay_s = delay_s
        self.cached = cached
        self.started = 0
        self.closed = 0
        self.completed = 0
        self.gate: asyncio.Event | None = None

    async def stream(self, kind: str, body: dict[str, Any]):
        text = body.get("prompt") if kind == "completions" else body["messages"][-1]["content"]
        if "TOO LONG" in text:
            raise UpstreamError(400, "the context limit is 64 tokens per request")
        n_prompt = len(text.split())
        cache_n = min(self.cached, n_prompt) if body.get("cache_prompt", True) else 0
        self.started += 1
        try:
            for i in range(1, body["max_tokens"] + 1):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                timings = {"cache_n": cache_n, "prompt_n": n_prompt - cache_n, "predicted_n": i}
                last = i == body["max_tokens"]
                if kind == "completions":
                    choice = {
                        "index": 0,
                        "text": f" t{i}",
                        "finish_reason": "length" if last else None,
                    }
                else:
                    choice = {
                        "index": 0,
                        "delta": {"content": f" t{i}"},
                        "finish_reason": "length" if last else None,
                    }
                chunk: dict[str, Any] = {
                    "id": "cmpl-1",
                    "created": 1,
                    "model": "m",
                    "object": "x",
                    "choices": [choice],
                    "timings": timings,
                }
                if last:
                    chunk["usage"] = {
                        "prompt_tokens": n_prompt,
                        "completion_tokens": i,
                        "total_tokens": n_prompt + i,
                    }
                yield chunk
            self.completed += 1
        finally:
            self.closed += 1

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}

    async def aclose(self) -> None:
        return None


@pytest.fixture
def make_server():
    """``make_server(engine, meter=..., **cfg)`` → a started BackgroundServer (stopped after)."""
    servers: list[BackgroundServer] = []

    def make(engine: Any, meter: Any = None, **kwargs: Any) -> BackgroundServer:
        cfg = ServeConfig(**{"model": "scripted.gguf", "port": 0, "window_s": 1000.0, **kwargs})
        wm = WindowedMeter(meter or FakeMeter(power_w=1.0))
        bs = BackgroundServer(cfg, engine=engine, windows=wm)
        bs.start()
        servers.append(bs)
        return bs

    yield make
    for bs in servers:
        bs.stop(10)
