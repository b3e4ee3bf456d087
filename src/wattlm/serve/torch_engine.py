"""A torch model served with transformers' own continuous batching.

``model.init_continuous_batching()`` (transformers' ``ContinuousBatchingManager``) runs a
generation thread that schedules requests into a paged KV cache: up to ``slots`` requests
share each forward pass, new ones join as others finish, and full cache blocks with the same
prefix are shared (``allow_block_sharing``). Each request streams its tokens back through
``register_result_handler``; the engine turns them into OpenAI-shaped chunks with the same
``timings`` counters the llama.cpp engine gets from llama.cpp, so the relay and the energy
split are the same. Sampling is greedy unless the request sets ``temperature`` > 0.

transformers does not report per-request prefix-cache hits, so ``cache_n`` is 0 and every
prompt token is charged as evaluated (an over-estimate when blocks were shared).

Example:
    >>> from wattlm.serve.config import ServeConfig
    >>> engine = TorchEngine(ServeConfig(model="smollm2-135m", backend="torch"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from wattlm.serve.config import ServeConfig
from wattlm.serve.llamacpp_engine import UpstreamError

PAGE_TOKENS = 256


class TorchEngine:
    """Serve ``cfg.model`` (or an already loaded model) on transformers' continuous batching."""

    name = "torch"

    def __init__(self, cfg: ServeConfig, loaded: Any = None) -> None:
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        if loaded is None:
            import torch

            from wattlm.models.load import load_model

            torch.set_num_threads(cfg.threads)
            loaded = load_model(cfg.model, device="cpu")
        self.cfg = cfg
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        model = loaded.model.eval()
        limit = getattr(model.config, "max_position_embeddings", None)
        self.context_tokens = min(cfg.context_tokens, limit) if limit else cfg.context_tokens
        eos = self.tokenizer.eos_token_id
        self._eos = eos
        gen = GenerationConfig(
            max_new_tokens=cfg.default_max_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else eos,
        )
        blocks_per_request = math.ceil(self.context_tokens / PAGE_TOKENS)
        cb = ContinuousBatchingConfig(
            page_size=PAGE_TOKENS,
            num_blocks=cfg.slots * blocks_per_request + cfg.slots,
            max_batch_tokens=max(PAGE_TOKENS, 2 * cfg.slots * 64),
            max_requests_per_batch=cfg.slots,
            allow_block_sharing=True,
        )
        _match_cache_dtype(model)
        self._manager = model.init_continuous_batching(
            generation_config=gen, continuous_batching_config=cb
        )
        self._manager.start()

    def _prompt_ids(self, kind: str, body: dict[str, Any]) -> list[int]:
        if kind == "chat":
            if getattr(self.tokenizer, "chat_template", None):
                ids = self.tokenizer.apply_chat_template(
                    body["messages"], add_generation_prompt=True, tokenize=True
                )
                return list(ids["input_ids"] if isinstance(ids, dict) else ids)
            text = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in body["messages"])
            return list(self.tokenizer(text + "\nassistant:").input_ids)
        prompt = body["prompt"]
        return list(prompt) if isinstance(prompt, list) else list(self.tokenizer(prompt).input_ids)

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run one request; yield llama.cpp-shaped chunks (``timings`` included)."""
        ids = self._prompt_ids(kind, body)
        max_new = int(body.get("max_tokens") or self.cfg.default_max_tokens)
        if len(ids) + max_new > self.context_tokens:
            raise UpstreamError(
                400,
                f"the prompt has {len(ids)} tokens; with max_tokens={max_new} it exceeds the "
                f"context limit of {self.context_tokens} tokens per request",
            )
        rid = f"req-{uuid.uuid4().hex}"
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._manager.register_result_handler(rid, queue.put_nowait)
        self._manager.add_request(ids, request_id=rid, max_new_tokens=max_new, streaming=True)
        created = int(time.time())
        text, seen, finished = "", 0, False
        try:
            while True:
                try:
                    out = await asyncio.wait_for(queue.get(), 1.0)
                except asyncio.TimeoutError:
                    if not self._manager.is_running():  # its thread died: fail, never hang
                        raise UpstreamError(
                            503, "the generation thread stopped", "server_error"
                        ) from None
                    continue
                if out.error:
                    raise UpstreamError(500, f"generation failed: {out.error}", "server_error")
                tokens = list(out.generated_tokens)
                if len(tokens) == seen and not out.is_finished():
                    continue
                seen = len(tokens)
                full = self.tokenizer.decode(tokens, skip_special_tokens=True)
                delta, text = full[len(text) :], full
                done = out.is_finished()
                reason = None
                if done:
                    reason = "stop" if tokens and tokens[-1] == self._eos else "length"
                timings = {"cache_n": 0, "prompt_n": len(ids), "predicted_n": len(tokens)}
                chunk: dict[str, Any] = {
                    "id": rid,
                    "created": created,
                    "model": self.cfg.model_id,
                    "object": "text_completion"
                    if kind == "completions"
                    else "chat.completion.chunk",
                    "choices": [_choice(kind, delta, reason)],
                    "timings": timings,
                }
                if done:
                    chunk["usage"] = {
                        "prompt_tokens": len(ids),
                        "completion_tokens": len(tokens),
                        "total_tokens": len(ids) + len(tokens),
                    }
                    finished = True
                yield chunk
                if done:
                    return
        finally:
            if not finished:
                self._manager.cancel_request(rid)

    def describe(self) -> dict[str, Any]:
        """Runtime and settings."""
        import transformers

        return {
            "backend": self.name,
            "runtime": f"transformers {transformers.__version__} continuous batching",
            "slots": self.cfg.slots,
            "threads": self.cfg.threads,
            "context_tokens_per_slot": self.context_tokens,
            "continuous_batching": True,
            "prompt_cache": "paged KV blocks shared between requests with the same prefix "
            "(hits not reported: cache_n is 0)",
        }

    async def aclose(self) -> None:
        """Stop the generation thread."""
        await asyncio.to_thread(self._manager.stop, True)


def _choice(kind: str, delta: str, reason: str | None) -> dict[str, Any]:
    if kind == "completions":
        return {"index": 0, "text": delta, "finish_reason": reason}
    return {"index": 0, "delta": {"content": delta}, "finish_reason": reason}


def _match_cache_dtype(model: Any) -> None:
    """Make ``model.dtype`` the dtype its attention produces keys in.

    transformers allocates the paged KV cache in ``model.dtype`` (the first parameter's
    dtype). A compressed model can differ: int4 layers with a bfloat16 embedding report
    bfloat16 while the attention hands float32 keys to the cache, which then refuses them.
    One forward pass on one token finds the keys' dtype; when it differs, the model's class
    is narrowed to a subclass whose ``dtype`` says so.
    """
    import torch

    seen: list[Any] = []

    def grab(_module: Any, _inputs: Any, output: Any) -> None:
        seen.append(output.dtype)

    k_proj = next((m for n, m in model.named_modules() if n.endswith("k_proj")), None)
    if k_proj is None:
        return
    handle = k_proj.register_forward_hook(grab)
    try:
        with torch.inference_mode():
            model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=model.device))
    finally:
        handle.remove()
    if seen and seen[0] != model.dtype:
        keys = seen[0]
        cls = type(model)
        model.__class__ = type(cls.__name__, (cls,), {"dtype": property(lambda _self: keys)})
