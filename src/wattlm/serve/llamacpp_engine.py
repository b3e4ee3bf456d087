"""llama.cpp's own server (``xllamacpp``), run in-process behind wattlm's accounting layer.

llama.cpp schedules: ``slots`` parallel sequences, continuous batching, and its prompt
cache (a slot keeps its KV cache, a new request goes to the slot sharing the longest
prefix, and prefixes are also kept in a host-RAM cache). wattlm only forwards requests to
llama.cpp's loopback HTTP port, locked with a random key, always as a stream with
``timings_per_token`` so every chunk carries llama.cpp's own counters: ``prompt_n``
(prompt tokens evaluated), ``cache_n`` (prompt tokens reused from the cache) and
``predicted_n`` (tokens generated). Closing the stream (a client that went away) makes
llama.cpp cancel the task and free its slot.

Example:
    >>> engine = LlamaCppEngine(ServeConfig(model="model.gguf"))  # doctest: +SKIP
    >>> engine.context_tokens  # doctest: +SKIP
    2048
"""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import AsyncIterator
from typing import Any

from wattlm.errors import WattlmError
from wattlm.serve._http import http_client_module
from wattlm.serve.config import ServeConfig

PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


class UpstreamError(Exception):
    """llama.cpp refused a request: HTTP status and its message."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


class LlamaCppEngine:
    """Start llama.cpp with ``cfg.slots`` slots of ``cfg.context_tokens`` tokens each."""

    name = "llamacpp"

    def __init__(self, cfg: ServeConfig) -> None:
        from wattlm.bench.backends import _llamacpp_server as srv
        from wattlm.export.gguf_reader import check_gguf

        self.cfg = cfg
        self.gguf = check_gguf(cfg.model)
        limit = self.gguf.context_length
        if limit is not None and cfg.context_tokens > limit:
            raise WattlmError(
                f"--context-tokens {cfg.context_tokens} exceeds the model's training context "
                f"of {limit} tokens",
                hint=f"use --context-tokens {limit} or less",
            )
        self.context_tokens = cfg.context_tokens
        xllamacpp = srv.import_xllamacpp()
        self._build = srv.build_info(xllamacpp)
        self._key = secrets.token_hex(16)
        p = xllamacpp.CommonParams()
        p.model.path = str(self.gguf.path)
        p.n_parallel = cfg.slots
        p.n_ctx = cfg.slots * cfg.context_tokens  # llama.cpp divides it among the slots
        p.cpuparams.n_threads = cfg.threads
        p.cpuparams_batch.n_threads = cfg.threads
        p.kv_unified = False
        p.verbosity = -1
        p.n_threads_http = cfg.slots + 4
        p.endpoint_metrics = False
        p.api_keys = [self._key]
        # llama.cpp's threads inherit the creating thread's signal mask: with SIGINT/SIGTERM
        # blocked there, a signal reaches Python (which drains) instead of interrupting
        # llama.cpp's HTTP threads (which then stop its server under the running requests)
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        try:
            self._server = xllamacpp.Server(p)
        except (RuntimeError, ValueError) as err:
            raise WattlmError(
                f"llama.cpp could not load {self.gguf.path}: {err}",
                hint="check the file and that the context fits in memory",
            ) from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self.base_url = self._server.listening_address
        httpx = http_client_module()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=httpx.Timeout(None, connect=10.0),
            limits=httpx.Limits(max_connections=cfg.max_in_flight + 8),
        )

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Send ``body`` to llama.cpp as a stream; yield its chunks (parsed JSON).

        Raises :class:`UpstreamError` before the first chunk when llama.cpp refuses.
        """
        upstream = {**body, "stream": True, "timings_per_token": True}
        request = self._client.build_request("POST", PATHS[kind], json=upstream)
        response = await self._client.send(request, stream=True)
        try:
            if response.status_code != 200:
                raw = await response.aread()
                raise _upstream_error(response.status_code, raw)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    err = chunk["error"]
                    raise UpstreamError(int(err.get("code", 500)), str(err.get("message", err)))
                yield chunk
        finally:
            await response.aclose()

    def describe(self) -> dict[str, Any]:
        """Runtime, build and settings (for ``/v1/models`` and loadtest records)."""
        return {
            "backend": self.name,
            "runtime": "llama.cpp server (in-process, xllamacpp)",
            **{k: v for k, v in self._build.items() if k != "cpu_features"},
            "slots": self.cfg.slots,
            "threads": self.cfg.threads,
            "context_tokens_per_slot": self.context_tokens,
            "continuous_batching": True,
            "prompt_cache": "on (slot KV reuse by longest common prefix + host-RAM cache)",
            "file_type": self.gguf.file_type_name,
        }

    async def aclose(self) -> None:
        """Close the HTTP client and stop llama.cpp."""
        await self._client.aclose()
        self._server = None


def _upstream_error(status: int, raw: bytes) -> UpstreamError:
    try:
        err = json.loads(raw).get("error", {})
    except (ValueError, AttributeError):
        err = {}
    message = err.get("message") if isinstance(err, dict) else None
    kind = err.get("type", "invalid_request_error") if isinstance(err, dict) else "server_error"
    if kind == "exceed_context_size_error":
        n_ctx = err.get("n_ctx")
        n_prompt = err.get("n_prompt_tokens")
        if n_ctx is not None:
            message = (
                f"the prompt has {n_prompt} tokens; the context limit is {n_ctx} tokens per "
                "request (prompt + generated tokens)"
            )
        kind = "invalid_request_error"
    return UpstreamError(status, message or raw.decode("utf-8", "replace")[:500], kind)
