"""The HTTP layer (FastAPI): OpenAI endpoints, health, metrics, key, admission, errors.

Endpoints: ``POST /v1/completions`` and ``POST /v1/chat/completions`` (``stream`` true or
false), ``GET /v1/models``, ``GET /health``, ``GET /metrics``. Statuses a client may get:

- 400: the body is not JSON, misses its prompt/messages, or the prompt does not fit the
  context (the message says the limit);
- 401: a key is required (``--api-key``) and the request has none or another one;
- 429: every slot is busy and the queue is full (``Retry-After`` says when to retry);
- 503: the server is draining (SIGTERM) and takes no new request.

Errors use OpenAI's shape: ``{"error": {"message", "type", "code"}}``.

Example:
    >>> from wattlm.serve.config import ServeConfig
    >>> app = build_app(ServeConfig(model="m.gguf"), engine=None, windows=None)  # doctest: +SKIP
"""

import asyncio
import contextlib
import json
import secrets
from typing import Any

from wattlm.serve.config import ServeConfig
from wattlm.serve.llamacpp_engine import UpstreamError
from wattlm.serve.metrics import ServeMetrics
from wattlm.serve.relay import Outcome, Relay, assemble
from wattlm.serve.validate import BadRequest, parse_body
from wattlm.serve.windows import WindowedMeter

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    503: "unavailable_error",
}


class ServerState:
    """What the routes share: admission count, draining flag, the ticker task."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.draining = False
        self.ticker: asyncio.Task[None] | None = None


def error_response(status: int, message: str, kind: str | None = None, **headers: str) -> Any:
    """An OpenAI-shaped error reply."""
    from fastapi.responses import JSONResponse

    body = {"error": {"message": message, "type": kind or ERROR_TYPES.get(status), "code": status}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def build_app(
    cfg: ServeConfig, engine: Any, windows: WindowedMeter, replica: str | None = None
) -> Any:
    """The FastAPI app serving ``engine``, charging energy on ``windows``.

    ``replica`` names this copy of the server when several serve one model (``--ray``): it is
    added to each response's ``usage`` and to ``/health``.
    """
    # no ``from __future__ import annotations`` here: FastAPI reads the route functions'
    # annotations at runtime, and Request is only importable inside this function
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    state = ServerState()
    metrics = ServeMetrics()
    relay = Relay(engine, windows, cfg.model_id, replica)

    async def tick() -> None:
        while True:
            await asyncio.sleep(cfg.window_s)
            windows.cut()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any):
        state.ticker = asyncio.create_task(tick())
        try:
            yield
        finally:
            state.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.ticker
            await engine.aclose()
            windows.close()

    app = FastAPI(title="wattlm serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.serve = state
    app.state.metrics = metrics
    app.state.windows = windows
    app.state.engine = engine

    def unauthorized(request: Request) -> Any:
        if cfg.api_key is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(
            given.strip().encode(), cfg.api_key.encode()
        ):
            return None
        what = "no API key" if not header else "a wrong API key"
        return error_response(401, f"this server requires a key; the request has {what}")

    def refused(request: Request) -> Any:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        if state.draining:
            return error_response(503, "the server is shutting down", **{"Retry-After": "5"})
        if state.in_flight >= cfg.max_in_flight:
            return error_response(
                429,
                f"all {cfg.slots} slots are busy and {cfg.max_queue} requests are queued",
                **{"Retry-After": "1"},
            )
        return None

    async def generate(kind: str, request: Request) -> Any:
        refusal = refused(request)
        if refusal is not None:
            metrics.requests.labels(endpoint=kind, status=str(refusal.status_code)).inc()
            return refusal
        try:
            body = parse_body(kind, await request.body(), default_max_tokens=cfg.default_max_tokens)
        except BadRequest as err:
            metrics.requests.labels(endpoint=kind, status="400").inc()
            return error_response(400, str(err))
        stream = bool(body.get("stream", False))
        state.in_flight += 1
        metrics.in_flight.set(state.in_flight)
        outcome = Outcome()
        chunks = relay.run(kind, body, outcome)
        released = False

        def release(status: int) -> None:
            nonlocal released
            if released:
                return
            released = True
            state.in_flight -= 1
            metrics.in_flight.set(state.in_flight)
            metrics.requests.labels(endpoint=kind, status=str(status)).inc()
            if status == 200:
                metrics.observe(outcome)

        try:
            first = await anext(chunks)
        except UpstreamError as err:
            release(err.status)
            return error_response(err.status, err.message, err.kind)
        except BaseException:
            release(500)
            raise
        if not stream:
            status = 500
            try:
                collected = [first, *[c async for c in chunks]]
                status = 200
            except UpstreamError as err:
                status = err.status
                return error_response(err.status, err.message, err.kind)
            finally:
                release(status)
            return JSONResponse(assemble(kind, collected, collected[-1]["usage"]))

        async def sse():
            status = 499  # unless the stream ends: the client went away
            try:
                yield f"data: {json.dumps(first)}\n\n"
                async for chunk in chunks:
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"
                status = 200
            except UpstreamError as err:
                status = err.status
                error = {"error": {"message": err.message, "type": err.kind, "code": err.status}}
                yield f"data: {json.dumps(error)}\n\n"
            except Exception:
                status = 500
                raise
            finally:
                await chunks.aclose()
                release(status)

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await generate("completions", request)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await generate("chat", request)

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        if (refusal := unauthorized(request)) is not None:
            return refusal
        return {
            "object": "list",
            "data": [
                {
                    "id": cfg.model_id,
                    "object": "model",
                    "owned_by": "wattlm",
                    "meta": {
                        **engine.describe(),
                        "energy_source": windows.source,
                        "attribution": windows.method,
                    },
                }
            ],
        }

    @app.get("/health")
    async def health() -> Any:
        if state.draining:
            return error_response(503, "the server is shutting down")
        out = {"status": "ok", "in_flight": state.in_flight, "slots": cfg.slots}
        if replica is not None:
            out["replica"] = replica
        return out

    @app.get("/metrics")
    async def prometheus() -> Any:
        return Response(metrics.render(windows.totals()), media_type=metrics.content_type)

    return app
