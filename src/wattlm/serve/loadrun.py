"""Send a planned workload with the official ``openai`` client (async) and time each request.

Each request is a streamed completion (``stream_options.include_usage``), so the client sees
its first token (TTFT), the gaps between tokens, and the final ``usage`` (with wattlm's
``energy_j`` when the server is ``wattlm serve``). At most ``concurrency`` requests are open
at once; a request is not started after the time limit, and requests still open at the
limit are cancelled and counted as ``timeout``. Retries are off: a refusal is a result.

Example:
    >>> import asyncio
    >>> records = asyncio.run(run_workload("http://127.0.0.1:8000/v1", plan,
    ...                                     concurrency=4))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from wattlm.errors import WattlmError
from wattlm.serve.workload import PlannedRequest


@dataclass
class RequestRecord:
    """What the client saw of one request (times in seconds from the test's start)."""

    index: int
    sent_s: float | None = None
    status: str = "not_sent"  # ok, http_<code>, connection, timeout, not_sent
    error: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    token_gaps_s: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    energy_j: float | None = None
    energy_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("token_gaps_s")
        return out


def _client(base_url: str, api_key: str | None, concurrency: int) -> Any:
    try:
        from openai import AsyncOpenAI
    except ImportError:
        raise WattlmError(
            "wattlm loadtest needs the openai client", hint='pip install "wattlm[serve]"'
        ) from None
    from wattlm.serve._http import http_client_module

    httpx = http_client_module()

    return AsyncOpenAI(
        base_url=base_url,
        api_key=api_key or "none",
        max_retries=0,
        timeout=httpx.Timeout(600.0, connect=10.0),
        http_client=httpx.AsyncClient(
            limits=httpx.Limits(max_connections=concurrency + 4),
            timeout=httpx.Timeout(600.0, connect=10.0),
        ),
    )


async def _one(
    client: Any, model: str, req: PlannedRequest, rec: RequestRecord, t0: float, extra: dict
):
    import openai

    start = time.perf_counter()
    rec.sent_s = start - t0
    last = None
    try:
        stream = await client.completions.create(
            model=model,
            prompt=req.prompt,
            max_tokens=req.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=extra or None,
        )
        async for chunk in stream:
            now = time.perf_counter()
            if chunk.choices and chunk.choices[0].text:
                if rec.ttft_s is None:
                    rec.ttft_s = now - start
                elif last is not None:
                    rec.token_gaps_s.append(now - last)
                last = now
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
                rec.prompt_tokens = usage.get("prompt_tokens")
                rec.completion_tokens = usage.get("completion_tokens")
                rec.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                rec.energy_j = usage.get("energy_j")
                rec.energy_source = usage.get("energy_source")
        rec.status = "ok"
    except openai.APIStatusError as err:
        rec.status = f"http_{err.status_code}"
        rec.error = str(err)[:300]
    except openai.APIConnectionError as err:
        rec.status = "connection"
        rec.error = str(err)[:300]
    except asyncio.CancelledError:
        rec.status = "timeout"
        raise
    finally:
        rec.latency_s = time.perf_counter() - start


async def run_workload(
    base_url: str,
    plan: list[PlannedRequest],
    *,
    concurrency: int,
    model: str = "default",
    api_key: str | None = None,
    time_limit_s: float = 600.0,
    extra_body: dict[str, Any] | None = None,
) -> tuple[list[RequestRecord], float]:
    """Run ``plan``; return one record per planned request and the wall seconds taken.

    ``extra_body`` adds fields to every request (``{"cache_prompt": False}`` turns
    llama.cpp's prompt cache off for them).
    """
    if concurrency < 1:
        raise WattlmError(f"--concurrency must be >= 1, got {concurrency}")
    client = _client(base_url, api_key, concurrency)
    records = [RequestRecord(r.index) for r in plan]
    gate = asyncio.Semaphore(concurrency)
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s

    async def launch(req: PlannedRequest, rec: RequestRecord) -> None:
        delay = t0 + req.at_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        async with gate:
            if time.perf_counter() >= deadline:
                return
            await _one(client, model, req, rec, t0, extra_body or {})

    tasks = [asyncio.create_task(launch(r, rec)) for r, rec in zip(plan, records, strict=True)]
    _done, pending = await asyncio.wait(tasks, timeout=max(deadline - time.perf_counter(), 0))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    wall_s = time.perf_counter() - t0
    await client.close()
    return records, wall_s
