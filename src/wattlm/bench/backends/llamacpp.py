"""llama.cpp backend: a GGUF file run by an in-process llama.cpp server (``xllamacpp``).

One server is started with ``batch_size`` slots, each with room for ``context_tokens``
tokens. Sequence ``i`` of a batch always goes to slot ``i``; the ``batch_size`` requests are
sent together from worker threads and llama.cpp batches them (continuous batching).

What each window holds, per sequence of ``L`` prompt tokens:

- :meth:`~LlamaCppBackend.prefill`: the prompt with ``cache_prompt`` off, so all ``L``
  tokens are evaluated every time (a repeat never hits the cache of the previous one), and
  the first token ``t1`` sampled from the last position. Checked: llama.cpp reports
  ``prompt_n == L`` (no BOS added, nothing reused).
- :meth:`~LlamaCppBackend.decode` ``(steps)``: the prompt plus ``t1`` with ``cache_prompt``
  on. The slot still holds the prompt's KV cache, so llama.cpp evaluates only ``t1`` (the
  forward pass that yields ``t2``) and then generates: exactly ``steps`` single-token
  forward passes, returning ``t2 … t(steps+1)``. Checked: ``cache_n == L`` and
  ``prompt_n == 1``; anything else raises, since the window would hide a second prefill.

So ``generate(prompts, n)`` (prefill, then ``decode(n - 1)``) equals a plain greedy
generation of ``n`` tokens, and decode tokens/s counts forward passes one for one (with
n-gram speculative decoding on, one forward pass may verify several drafted tokens; the
tokens are the same, and :meth:`~LlamaCppBackend.describe` reports how many drafted tokens
were accepted).

Runtime settings (:attr:`LlamaCppBackend.runtime_settings`, the search's dimensions):
``n_batch`` / ``n_ubatch`` (logical / physical batch of a prompt evaluation), ``flash_attn``
(``auto``/``on``/``off``), ``kv_cache`` (the KV-cache type of K and V: ``f16`` … ``q4_0``;
a quantized one needs flash attention and a head size that is a multiple of 32) and
``speculative`` (``off`` or an n-gram drafter, ``ngram-mod``, ``ngram-simple`` or
``ngram-map-k``: drafts are tokens that followed the same n-gram earlier in the sequence,
no draft model; the model verifies them, so greedy output is unchanged token for token),
with ``spec_ngram`` (the n-gram size) and ``spec_draft`` (most tokens drafted at once);
left out, llama.cpp's defaults (12-24-token n-grams, which rarely match in a short
generation).
Sampling is greedy (top-k 1, temperature 0); end-of-generation tokens are masked
(``ignore_eos``), as ``min_new_tokens`` does in transformers, so exactly ``n`` come back.

Example:
    >>> with LlamaCppBackend("model.gguf", threads=2, batch_size=2,
    ...                      context_tokens=512) as backend:  # doctest: +SKIP
    ...     tokens = backend.generate([[504, 3575, 282], [1780, 314, 260]], 8)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wattlm._config import check_int
from wattlm.bench.backends import _llamacpp_server as srv
from wattlm.bench.backends.base import Backend
from wattlm.bench.backends.llamacpp_logprobs import METHOD, LlamaCppLogProbs
from wattlm.bench.backends.runtime_settings import RuntimeSetting
from wattlm.errors import WattlmError
from wattlm.export.gguf_reader import GgufInfo, check_gguf

BARRIER_TIMEOUT_S = 10.0


def _positive(name: str, value: Any, minimum: int = 1) -> int:
    check_int(name, value, minimum)
    return value


class LlamaCppBackend(Backend):
    """Greedy prefill/decode of a GGUF model on llama.cpp, ``batch_size`` sequences at once.

    Args:
        gguf_path: the model file (checked with :func:`~wattlm.export.gguf_reader.check_gguf`).
        threads: CPU threads for both prompt and generation batches.
        batch_size: server slots, the most sequences per call.
        context_tokens: room per slot: prompt plus new tokens must fit.
        n_gpu_layers: layers offloaded to a GPU (0: CPU only; needs a GPU build).
        n_batch, n_ubatch, flash_attn, kv_cache, speculative, spec_ngram, spec_draft: the
            runtime settings
            (:attr:`runtime_settings`; defaults: llama.cpp's).

    Attributes:
        last_timings: llama.cpp's own timings of the last prefill or decode, one dict per
            sequence (``cache_n``, ``prompt_n``, ``prompt_ms``, ``predicted_n``,
            ``predicted_ms``…), for cross-checking the wall-clock windows. They are
            per-slot latencies: llama.cpp may start some slots' prompts in a later batch
            than others, so compare a window with ``tokens / wall time``, not with the
            largest ``prompt_ms``.
    """

    name = "llamacpp"
    requires = "xllamacpp"
    extra = "llamacpp"
    isolated = True
    note = (
        "llama.cpp runs the GGUF file with its own quantized kernels; its perplexity is "
        "measured on llama.cpp's own hidden states (runtime_quality), beside torch's on "
        "the dequantized weights (quality) as a cross-check; each llama.cpp run is measured "
        "in its own process (when wattlm chooses the meter), because torch's OpenMP "
        "runtime slows llama.cpp in a shared process"
    )
    runs_gguf = True
    log_probs_method = METHOD
    #: torch-side precision stages: llama.cpp quantizes by its GGUF type (``qtype``) instead
    replaces_stages = frozenset({"cast", "int8-weight", "int4-weight", "int8-dynamic"})
    refuses_stages = frozenset({"lowrank"})
    refusal = "layers cannot be exported to GGUF for llama.cpp"
    runtime_settings = (
        RuntimeSetting("n_batch", 2048, help="logical batch of a prompt evaluation"),
        RuntimeSetting("n_ubatch", 512, help="physical batch of a prompt evaluation"),
        RuntimeSetting("flash_attn", "auto", tuple(srv.FLASH_ATTN), "flash attention"),
        RuntimeSetting(
            "kv_cache", "f16", tuple(srv.KV_CACHE), "KV-cache type of K and V", affects_quality=True
        ),
        RuntimeSetting("speculative", "off", tuple(srv.SPECULATIVE), "n-gram speculative decoding"),
        RuntimeSetting("spec_ngram", None, help="n-gram size a draft is looked up by"),
        RuntimeSetting("spec_draft", None, help="most tokens drafted at once"),
    )

    @classmethod
    def same_run(cls, settings: dict[str, Any]) -> dict[str, Any]:
        if settings.get("speculative", "off") == "off":  # draft sizes of no drafter
            return {k: v for k, v in settings.items() if not k.startswith("spec_")}
        return settings

    @classmethod
    def runtime_problem(cls, settings: dict[str, Any]) -> str | None:
        kv, flash = settings.get("kv_cache", "f16"), settings.get("flash_attn", "auto")
        if kv in srv.QUANTIZED_KV and flash == "off":
            return f"llama.cpp needs flash attention for a quantized KV cache (kv_cache={kv})"
        n_batch, n_ubatch = settings.get("n_batch", 2048), settings.get("n_ubatch", 512)
        if n_ubatch > n_batch:
            return f"n_ubatch={n_ubatch} exceeds n_batch={n_batch}"
        sizes = [k for k in ("spec_ngram", "spec_draft") if k in settings]
        if sizes and settings.get("speculative", "off") == "off":
            return f"{', '.join(sizes)} set, but speculative decoding is off"
        return None

    @classmethod
    def check(cls, config: Any, loaded: Any) -> None:
        if loaded.gguf_path is None:
            raise WattlmError(
                f"the llamacpp backend needs a GGUF file; {loaded.spec!r} is not one",
                hint="pass --model path/to/model.gguf or drop --backend llamacpp",
            )
        cls.check_available()

    @classmethod
    def auto_selects(cls, loaded: Any) -> bool:
        return loaded.gguf_path is not None and cls.is_available()

    @classmethod
    def options(
        cls, loaded: Any, config: Any, batch_size: int, exported: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "gguf_path": loaded.gguf_path,
            "threads": config.resolved_threads,
            "batch_size": batch_size,
            "context_tokens": config.prompt_tokens + config.new_tokens + 8,
            "n_gpu_layers": 99 if config.device.startswith("cuda") else 0,
            **cls.runtime_of(config),
        }

    @classmethod
    def run_dtype(cls, config: Any, details: dict[str, Any]) -> str:
        return details.get("file_type", "gguf")

    @classmethod
    @contextlib.contextmanager
    def log_probs(
        cls, loaded: Any, config: Any, exported: dict[str, Any] | None = None
    ) -> Iterator[LlamaCppLogProbs]:
        """llama.cpp's own next-token log-probabilities of the GGUF file (see
        :mod:`wattlm.bench.backends.llamacpp_logprobs`)."""
        window = min(config.ppl_max_length, loaded.context_length or config.ppl_max_length)
        runtime = getattr(config, "runtime", None) or {}
        with LlamaCppLogProbs(
            loaded.gguf_path,
            threads=len(os.sched_getaffinity(0)),  # quality does not depend on threads
            window=window,
            kv_cache=runtime.get("kv_cache", "f16"),
            flash_attn=runtime.get("flash_attn", "auto"),
        ) as scorer:
            yield scorer

    def __init__(
        self,
        gguf_path: str | Path,
        *,
        threads: int,
        batch_size: int,
        context_tokens: int,
        n_gpu_layers: int = 0,
        n_batch: int = 2048,
        n_ubatch: int = 512,
        flash_attn: str = "auto",
        kv_cache: str = "f16",
        speculative: str = "off",
        spec_ngram: int | None = None,
        spec_draft: int | None = None,
    ) -> None:
        self.threads = _positive("threads", threads)
        self.batch_size = _positive("batch_size", batch_size)
        self.context_tokens = _positive("context_tokens", context_tokens, 2)
        self.n_gpu_layers = _positive("n_gpu_layers", n_gpu_layers, 0)
        self.runtime = self.check_runtime(
            {
                "n_batch": n_batch,
                "n_ubatch": n_ubatch,
                "flash_attn": flash_attn,
                "kv_cache": kv_cache,
                "speculative": speculative,
                "spec_ngram": spec_ngram,
                "spec_draft": spec_draft,
            }
        )
        #: tokens drafted and accepted by speculative decoding, over every decode so far
        self.drafted_tokens = 0
        self.accepted_tokens = 0
        self.last_timings: list[dict[str, float]] = []
        self._server: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._seqs: list[list[int]] | None = None
        self.gguf: GgufInfo = check_gguf(gguf_path)
        limit = self.gguf.context_length
        if limit is not None and self.context_tokens > limit:
            raise WattlmError(
                f"context_tokens={self.context_tokens} exceeds the model's training "
                f"context of {limit} tokens ({self.gguf.path.name})",
                hint="use shorter prompts or fewer new tokens",
            )
        xllamacpp = srv.import_xllamacpp()
        if self.n_gpu_layers and not srv.gpu_devices(xllamacpp):
            raise WattlmError(
                f"n_gpu_layers={self.n_gpu_layers} asks for a GPU, but this xllamacpp build "
                "has no GPU backend (CPU only)",
                hint="install a CUDA build of xllamacpp, or run the llamacpp backend on CPU",
            )
        self._build = srv.build_info(xllamacpp)
        self.settings = srv.ServerSettings(
            model_path=self.gguf.path,
            threads=self.threads,
            n_parallel=self.batch_size,
            n_ctx=self.batch_size * self.context_tokens,
            n_gpu_layers=self.n_gpu_layers,
            **self.runtime,
        )
        self._server = srv.start_server(self.settings)
        if self.batch_size > 1:
            self._pool = ThreadPoolExecutor(self.batch_size, thread_name_prefix="wattlm-llamacpp")

    # -- Backend -------------------------------------------------------------------------

    def prefill(self, prompts: list[list[int]]) -> list[int]:
        """Evaluate every prompt in full (no cache reuse); return each first greedy token."""
        self._check_prompts(prompts)
        self._seqs = None
        replies = self._send(
            [self._request(i, p, n_predict=1, cache_prompt=False) for i, p in enumerate(prompts)]
        )
        firsts: list[int] = []
        for i, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
            t = srv.reply_timings(reply)
            if t.get("cache_n", 0) != 0 or t.get("prompt_n") != len(prompt):
                raise WattlmError(
                    f"llama.cpp evaluated {t.get('prompt_n')} prompt tokens (and reused "
                    f"{t.get('cache_n')}) for sequence {i} of {len(prompt)} tokens; the "
                    "prefill window would not hold exactly the prompt",
                    hint="this xllamacpp version treats token prompts differently; "
                    "report it with `wattlm --version` output",
                )
            firsts.append(self._tokens(reply, 1, i)[0])
        self._seqs = [[*p, t] for p, t in zip(prompts, firsts, strict=True)]
        return firsts

    def decode(self, steps: int) -> list[list[int]]:
        """Continue the last prefill for ``steps`` single-token forward passes per sequence.

        Each sequence is re-sent whole (prompt and tokens so far) to its slot, whose KV
        cache already holds all of it but the newest token; llama.cpp evaluates only that
        token, then generates. Returns the ``steps`` tokens that follow it.
        """
        if self._seqs is None:
            raise RuntimeError("decode() needs a successful prefill() first")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise WattlmError(f"decode steps must be an integer >= 0, got {steps!r}")
        if steps == 0:
            self.last_timings = []
            return [[] for _ in self._seqs]
        longest = max(len(s) for s in self._seqs)
        if longest + steps > self.context_tokens:
            raise WattlmError(
                f"{longest} tokens so far + {steps} new exceed context_tokens="
                f"{self.context_tokens}",
                hint="start the backend with a larger context_tokens",
            )
        seqs, self._seqs = self._seqs, None  # a failed decode leaves no half state behind
        replies = self._send(
            [self._request(i, s, n_predict=steps, cache_prompt=True) for i, s in enumerate(seqs)]
        )
        out: list[list[int]] = []
        for i, (seq, reply) in enumerate(zip(seqs, replies, strict=True)):
            t = srv.reply_timings(reply)
            if t.get("cache_n") != len(seq) - 1 or t.get("prompt_n") != 1:
                raise WattlmError(
                    f"llama.cpp re-evaluated {t.get('prompt_n')} tokens of sequence {i} "
                    f"(reused {t.get('cache_n')} of {len(seq) - 1} cached) at the start of "
                    "decode; the decode window would hide a second prefill",
                    hint="this model or llama.cpp build cannot reuse its KV cache "
                    "(sliding-window or recurrent memory?); use the torch backend",
                )
            out.append(self._tokens(reply, steps, i))
            self.drafted_tokens += int(t.get("draft_n", 0))
            self.accepted_tokens += int(t.get("draft_n_accepted", 0))
        self._seqs = [[*s, *new] for s, new in zip(seqs, out, strict=True)]
        return out

    def describe(self) -> dict[str, Any]:
        """Runtime, build and settings of this backend, and what the GGUF file holds."""
        s = self.settings
        return {
            "name": self.name,
            "runtime": "llama.cpp (in-process server, xllamacpp)",
            **self._build,
            "threads": s.threads,
            "threads_batch": s.threads,
            "n_parallel": s.n_parallel,
            "n_ctx": s.n_ctx,
            "context_tokens_per_slot": self.context_tokens,
            "n_batch": s.n_batch,
            "n_ubatch": s.n_ubatch,
            "n_gpu_layers": s.n_gpu_layers,
            "kv_unified": False,
            "swa_full": True,
            "flash_attn": s.flash_attn,
            "cache_type_k": s.kv_cache,
            "cache_type_v": s.kv_cache,
            "runtime_settings": dict(self.runtime),
            "speculative": self._speculative(),
            "prompt_cache": "prefill: off (every repeat evaluates the whole prompt); decode: the slot's KV cache is reused, only the newest token is evaluated",
            "sampling": "greedy (top_k=1, temperature=0), end-of-generation tokens masked",
            "file_type": self.gguf.file_type_name,
            "gguf": self.gguf.to_dict(),
        }

    def _speculative(self) -> dict[str, Any]:
        """The drafter and llama.cpp's draft counters (draft_n, draft_n_accepted), summed
        over every decode this backend ran (warm-up included)."""
        out: dict[str, Any] = {"type": self.settings.speculative}
        if self.settings.speculative != "off":
            rate = self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else None
            out.update(
                drafted_tokens=self.drafted_tokens,
                accepted_tokens=self.accepted_tokens,
                acceptance_rate=rate,
            )
        return out

    def close(self) -> None:
        """Stop the server (joins its loop thread) and the worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._server = None  # the binding's destructor stops llama.cpp and frees the model
        self._seqs = None

    # -- helpers -------------------------------------------------------------------------

    def _check_prompts(self, prompts: list[list[int]]) -> None:
        if self._server is None:
            raise WattlmError("this llama.cpp backend is closed")
        if not 1 <= len(prompts) <= self.batch_size:
            raise WattlmError(
                f"got {len(prompts)} prompts for a backend started with "
                f"batch_size={self.batch_size}",
                hint="start one backend per batch size",
            )
        for i, p in enumerate(prompts):
            if not p:
                raise WattlmError(f"prompt {i} is empty")
            if len(p) + 1 > self.context_tokens:
                raise WattlmError(
                    f"prompt {i} has {len(p)} tokens; with its first new token it exceeds "
                    f"context_tokens={self.context_tokens}",
                    hint="start the backend with a larger context_tokens",
                )

    def _request(self, slot: int, tokens: list[int], *, n_predict: int, cache_prompt: bool):
        return {
            "prompt": [int(t) for t in tokens],
            "id_slot": slot,
            "n_predict": n_predict,
            "cache_prompt": cache_prompt,
            "ignore_eos": True,
            "stream": False,
            **srv.GREEDY,
            **srv.WITH_IDS,
        }

    def _send(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send the requests at once (one worker thread each); keep llama.cpp's timings."""
        if len(requests) == 1 or self._pool is None:
            replies = [srv.complete(self._server, r) for r in requests]
        else:
            start = threading.Barrier(len(requests))
            server = self._server

            def call(request: dict[str, Any]) -> dict[str, Any]:
                # release all requests together, so the first steps are batched too
                with contextlib.suppress(threading.BrokenBarrierError):
                    start.wait(BARRIER_TIMEOUT_S)
                return srv.complete(server, request)

            futures = [self._pool.submit(call, r) for r in requests]
            replies = [f.result() for f in futures]
        self.last_timings = [srv.reply_timings(r) for r in replies]
        return replies

    @staticmethod
    def _tokens(reply: dict[str, Any], n: int, seq: int) -> list[int]:
        tokens = srv.reply_tokens(reply)
        if len(tokens) != n:
            raise WattlmError(
                f"llama.cpp returned {len(tokens)} token ids for sequence {seq}, expected {n}",
                hint="the xllamacpp reply format may have changed",
            )
        return tokens
