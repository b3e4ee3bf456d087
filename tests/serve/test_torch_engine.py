"""The torch engine (transformers continuous batching) on a tiny in-memory model."""

from __future__ import annotations

import asyncio

import pytest

from wattlm.serve._http import http_client_module
from wattlm.serve.torch_engine import TorchEngine
from wattlm.testing.meters import FakeMeter
from wattlm.testing.tiny import tiny_causal_lm

httpx = http_client_module()


@pytest.fixture(scope="module")
def tiny():
    return tiny_causal_lm()


def test_batched_requests_match_one_at_a_time_greedy(make_server, tiny):
    from wattlm.serve.config import ServeConfig

    cfg = ServeConfig(model="tiny", backend="torch", slots=3, threads=1, context_tokens=128)
    bs = make_server(TorchEngine(cfg, loaded=tiny), FakeMeter(power_w=2.0), model="tiny",
                     backend="torch", slots=3, context_tokens=128)  # fmt: skip
    url = bs.url + "/v1/completions"
    prompts = [f"the cat sat on the mat {i}" for i in range(5)]
    alone = [
        httpx.post(url, json={"prompt": p, "max_tokens": 6}, timeout=60).json() for p in prompts
    ]

    async def together():
        async with httpx.AsyncClient(timeout=60) as client:
            replies = await asyncio.gather(
                *(client.post(url, json={"prompt": p, "max_tokens": 6}) for p in prompts)
            )
            return [r.json() for r in replies]

    batched = asyncio.run(together())
    for a, b in zip(alone, batched, strict=True):
        assert a["choices"][0]["text"] == b["choices"][0]["text"]
        assert b["usage"]["completion_tokens"] == 6
        assert b["usage"]["energy_j"] > 0 and b["usage"]["energy_source"] == "fake"
    expected = len(tiny.tokenizer(prompts[0]).input_ids)
    assert alone[0]["usage"]["prompt_tokens"] == expected
    r = httpx.post(url, json={"prompt": "x " * 300, "max_tokens": 4})
    assert r.status_code == 400 and "context limit of 128 tokens" in r.json()["error"]["message"]
