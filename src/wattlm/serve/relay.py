"""One request through the engine: token events to the energy windows, usage with joules.

The engine streams chunks that carry its own counters (``timings``: ``prompt_n``,
``cache_n``, ``predicted_n``). For each chunk the relay reports the tokens processed since
the previous one to the :class:`~wattlm.serve.windows.WindowedMeter` (prompt tokens
evaluated, not cached; tokens generated), strips the timings, and passes the chunk on. When
the stream ends the request's window is closed and the final ``usage`` gets:

- ``prompt_tokens_details.cached_tokens``: prompt tokens served from the prefix cache;
- ``energy_j`` (and any other energy views), ``energy_source`` (the meter's label) and
  ``attribution`` (the split method, ``token-share-v1``);
- ``replica``: which replica answered, when the server runs several (``wattlm serve --ray``).

A non-streaming request is streamed from the engine all the same (so its tokens are charged
in the windows where they were computed) and assembled into one reply by :func:`assemble`.

Example:
    >>> reply = assemble("completions", [
    ...     {"id": "x", "created": 1, "model": "m", "choices": [{"text": "Hel"}]},
    ...     {"choices": [{"text": "lo", "finish_reason": "length"}]}], {"total_tokens": 3})
    >>> reply["choices"][0]["text"], reply["choices"][0]["finish_reason"]
    ('Hello', 'length')
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from wattlm.serve.windows import WindowedMeter


@dataclass
class Outcome:
    """What one finished request used (for metrics and logs)."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    wall_s: float = 0.0
    energy: dict[str, float | None] = field(default_factory=dict)


class Relay:
    """Run requests on an engine while charging their tokens to a windowed meter."""

    def __init__(
        self, engine: Any, windows: WindowedMeter, model_id: str, replica: str | None = None
    ) -> None:
        self.engine = engine
        self.windows = windows
        self.model_id = model_id
        self.replica = replica

    async def run(
        self, kind: str, body: dict[str, Any], outcome: Outcome
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the chunks of one request; the last one carries the enriched ``usage``."""
        rid = uuid.uuid4().hex
        start = time.perf_counter()
        seen_p = seen_d = cache_n = 0
        held: dict[str, Any] | None = None
        last: dict[str, Any] = {}
        finished = False
        self.windows.start(rid)
        upstream = {**body, "stream_options": {"include_usage": True}}
        try:
            async for chunk in self.engine.stream(kind, upstream):
                timings = chunk.pop("timings", None) or {}
                prompt_n = int(timings.get("prompt_n", seen_p))
                predicted_n = int(timings.get("predicted_n", seen_d))
                cache_n = int(timings.get("cache_n", cache_n))
                if prompt_n > seen_p or predicted_n > seen_d:
                    self.windows.tokens(
                        rid, prefill=max(prompt_n - seen_p, 0), decode=max(predicted_n - seen_d, 0)
                    )
                    seen_p, seen_d = max(prompt_n, seen_p), max(predicted_n, seen_d)
                if outcome.ttft_s is None and predicted_n > 0:
                    outcome.ttft_s = time.perf_counter() - start
                chunk["model"] = self.model_id
                last = chunk
                if chunk.get("usage") is not None:
                    held = chunk
                    continue
                yield chunk
            outcome.energy = self.windows.finish(rid)
            finished = True
        finally:
            if not finished:
                self.windows.abandon(rid)
        outcome.wall_s = time.perf_counter() - start
        usage = dict((held or {}).get("usage") or {})
        usage.setdefault("completion_tokens", seen_d)
        usage.setdefault("prompt_tokens", seen_p + cache_n)
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        details = dict(usage.get("prompt_tokens_details") or {})
        details["cached_tokens"] = cache_n
        usage["prompt_tokens_details"] = details
        usage.update(outcome.energy)
        usage["energy_source"] = self.windows.source
        usage["attribution"] = self.windows.method
        if self.replica is not None:
            usage["replica"] = self.replica
        outcome.prompt_tokens = int(usage["prompt_tokens"])
        outcome.cached_tokens = cache_n
        outcome.completion_tokens = int(usage["completion_tokens"])
        final = held or {
            k: last.get(k) for k in ("id", "object", "created", "model") if k in last
        } | {"choices": []}
        final["usage"] = usage
        final["model"] = self.model_id
        yield final


def assemble(kind: str, chunks: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
    """One non-streaming reply (OpenAI format) from a request's stream chunks."""
    head = chunks[0] if chunks else {}
    text: list[str] = []
    reasoning: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            finish = choice.get("finish_reason") or finish
            if kind == "completions":
                text.append(choice.get("text") or "")
                continue
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            for call in delta.get("tool_calls") or []:
                _merge_tool_call(tools, call)
    out: dict[str, Any] = {
        "id": head.get("id", f"cmpl-{uuid.uuid4().hex}"),
        "created": head.get("created", int(time.time())),
        "model": head.get("model"),
    }
    if kind == "completions":
        out["object"] = "text_completion"
        choice = {"index": 0, "text": "".join(text), "logprobs": None, "finish_reason": finish}
    else:
        out["object"] = "chat.completion"
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
        if any(reasoning):
            message["reasoning_content"] = "".join(reasoning)
        if tools:
            message["tool_calls"] = [tools[i] for i in sorted(tools)]
        choice = {"index": 0, "message": message, "finish_reason": finish}
    out["choices"] = [choice]
    out["usage"] = usage
    return out


def _merge_tool_call(tools: dict[int, dict[str, Any]], call: dict[str, Any]) -> None:
    index = int(call.get("index", 0))
    slot = tools.setdefault(
        index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if call.get("id"):
        slot["id"] = call["id"]
    fn = call.get("function") or {}
    slot["function"]["name"] += fn.get("name") or ""
    slot["function"]["arguments"] += fn.get("arguments") or ""
