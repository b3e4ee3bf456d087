"""An in-process llama.cpp server (``xllamacpp``): start it, send one completion, read it.

``xllamacpp.Server`` runs llama.cpp's own HTTP server code inside this process. Its
``handle_completions(dict)`` answers in the OpenAI completion format, releases the GIL while
it waits, and requests sent from several threads are batched by the server's slots
(continuous batching). Findings this module relies on (xllamacpp 2026.10):

- ``verbosity = -1`` silences llama.cpp's log on stderr, model loading included;
- a prompt given as token ids is used verbatim: no BOS is prepended, even for a model whose
  GGUF sets ``tokenizer.ggml.add_bos_token`` (a text prompt does get one);
- the OpenAI reply has no token ids, but ``n_probs=1`` with ``post_sampling_probs`` puts
  each generated token's id in ``choices[0].logprobs.content[i].id``; post-sampling
  probabilities come from the sampler's candidate list (one entry under top-k 1), so they
  add no full-vocabulary softmax per token;
- ``id_slot`` pins a request to a slot (an out-of-range id is silently ignored);
- errors come back as ``{"error": {"code", "message", "type"}}`` dicts.

The server also listens on a loopback HTTP port; it is locked with a random API key so
nothing else on the machine can use the slots during a measurement (in-process calls do
not go through the HTTP layer and need no key).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattlm.errors import WattlmError

#: request fields that make llama.cpp's sampling plain greedy argmax over the logits
GREEDY = {"temperature": 0.0, "top_k": 1, "samplers": ["top_k"], "seed": 0}
#: request fields that return the generated token ids
WITH_IDS = {"n_probs": 1, "post_sampling_probs": True}


@dataclass(frozen=True)
class ServerSettings:
    """How the llama.cpp server is started (all of it goes into ``describe()``)."""

    model_path: Path
    threads: int
    n_parallel: int
    n_ctx: int
    n_gpu_layers: int
    n_batch: int = 2048
    n_ubatch: int = 512
    flash_attn: str = "auto"
    kv_cache: str = "f16"
    speculative: str = "off"
    spec_ngram: int | None = None
    spec_draft: int | None = None


#: ``flash_attn`` setting -> llama.cpp's ``llama_flash_attn_type`` member
FLASH_ATTN = {
    "auto": "LLAMA_FLASH_ATTN_TYPE_AUTO",
    "on": "LLAMA_FLASH_ATTN_TYPE_ENABLED",
    "off": "LLAMA_FLASH_ATTN_TYPE_DISABLED",
}
#: ``kv_cache`` setting -> ``ggml_type`` member (the same type for K and V)
KV_CACHE = {
    "f16": "GGML_TYPE_F16",
    "bf16": "GGML_TYPE_BF16",
    "f32": "GGML_TYPE_F32",
    "q8_0": "GGML_TYPE_Q8_0",
    "q5_0": "GGML_TYPE_Q5_0",
    "q4_0": "GGML_TYPE_Q4_0",
}
#: KV-cache types llama.cpp stores quantized (a quantized V cache needs flash attention)
QUANTIZED_KV = frozenset({"q8_0", "q5_0", "q4_0"})
#: ``speculative`` setting -> ``common_speculative_type`` member: draft tokens looked up in
#: the sequence so far (n-grams), no draft model; verified by the model itself, so greedy
#: output is unchanged
SPECULATIVE = {
    "off": "COMMON_SPECULATIVE_TYPE_NONE",
    "ngram-mod": "COMMON_SPECULATIVE_TYPE_NGRAM_MOD",
    "ngram-simple": "COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE",
    "ngram-map-k": "COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K",
}
#: per drafter: its parameter block, and the fields of the n-gram size and the draft length
#: (``spec_ngram``, ``spec_draft``; left out: llama.cpp's defaults, 12-24-token n-grams that
#: rarely match within a short generation)
SPEC_SIZES = {
    "ngram-mod": ("ngram_mod", "n_match", "n_max"),
    "ngram-simple": ("ngram_simple", "size_n", "size_m"),
    "ngram-map-k": ("ngram_map_k", "size_n", "size_m"),
}


def import_xllamacpp() -> Any:
    """The ``xllamacpp`` module, or a WattlmError saying how to install it."""
    try:
        import xllamacpp
    except ImportError:
        raise WattlmError(
            "the llamacpp backend needs the xllamacpp package",
            hint='pip install "wattlm[llamacpp]"',
        ) from None
    return xllamacpp


def gpu_devices(xllamacpp: Any) -> list[str]:
    """Names of the non-CPU devices this xllamacpp build can use."""
    cpu = xllamacpp.ggml_backend_dev_type.GGML_BACKEND_DEVICE_TYPE_CPU
    return [d["name"] for d in xllamacpp.get_device_info() if d["type"] != cpu]


def start_server(settings: ServerSettings) -> Any:
    """Start an ``xllamacpp.Server`` for ``settings``; WattlmError if llama.cpp refuses."""
    xllamacpp = import_xllamacpp()
    p = xllamacpp.CommonParams()
    p.model.path = str(settings.model_path)
    p.n_parallel = settings.n_parallel
    p.n_ctx = settings.n_ctx  # llama.cpp divides it evenly among the slots
    p.n_batch = settings.n_batch
    p.n_ubatch = settings.n_ubatch
    p.n_gpu_layers = settings.n_gpu_layers
    p.flash_attn_type = getattr(xllamacpp.llama_flash_attn_type, FLASH_ATTN[settings.flash_attn])
    kv = getattr(xllamacpp.ggml_type, KV_CACHE[settings.kv_cache])
    p.cache_type_k = kv
    p.cache_type_v = kv
    p.speculative.types = [
        getattr(xllamacpp.common_speculative_type, SPECULATIVE[settings.speculative])
    ]
    if settings.speculative in SPEC_SIZES:
        block, ngram, draft = SPEC_SIZES[settings.speculative]
        params = getattr(p.speculative, block)
        if settings.spec_ngram is not None:
            setattr(params, ngram, settings.spec_ngram)
        if settings.spec_draft is not None:
            setattr(params, draft, settings.spec_draft)
            if hasattr(params, "n_min"):  # ngram-mod: a minimum draft length of its own
                params.n_min = min(params.n_min, settings.spec_draft)
    p.cpuparams.n_threads = settings.threads
    p.cpuparams_batch.n_threads = settings.threads
    p.verbosity = -1
    p.kv_unified = False  # each slot owns n_ctx / n_parallel cells
    # sliding-window layers keep their whole context, else llama.cpp may re-evaluate the
    # last few prompt tokens at the start of decode (seen with Gemma 3); no-op without SWA
    p.swa_full = True
    p.cache_ram_mib = 0  # no host-RAM prompt cache: no KV copies inside the windows
    p.cache_idle_slots = False
    p.n_threads_http = 1  # the HTTP port is unused
    p.endpoint_metrics = False
    p.api_keys = [secrets.token_hex(16)]
    try:
        return xllamacpp.Server(p)
    except (RuntimeError, ValueError) as err:
        raise WattlmError(
            f"llama.cpp could not load {settings.model_path}: {err}",
            hint="check that this llama.cpp build supports the model's architecture, "
            "that the context fits in memory, and that the KV-cache type suits the model "
            "(quantized types need a head size that is a multiple of 32)",
        ) from None


def complete(server: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Send one completion request and return the reply; WattlmError on an error reply."""
    try:
        reply = server.handle_completions(request)
    except Exception as err:  # the binding raises plain exceptions on bad input
        raise WattlmError(f"llama.cpp completion failed: {err}") from None
    error = reply.get("error") if isinstance(reply, dict) else {"message": repr(reply)}
    if error:
        raise _error(error)
    return reply


def _error(error: dict[str, Any] | str) -> WattlmError:
    if not isinstance(error, dict):
        return WattlmError(f"llama.cpp returned an error: {error}")
    kind = error.get("type", "")
    hint = None
    if kind == "exceed_context_size_error":
        hint = "raise context_tokens (prompt + new tokens must fit in one slot)"
    elif "invalid tokens" in str(error.get("message", "")):
        hint = "token ids must come from this model's vocabulary"
    return WattlmError(f"llama.cpp refused the request: {error.get('message', error)}", hint=hint)


def reply_tokens(reply: dict[str, Any]) -> list[int]:
    """Generated token ids of a reply to a request made with :data:`WITH_IDS`."""
    logprobs = reply["choices"][0].get("logprobs") or {}
    return [int(t["id"]) for t in logprobs.get("content", [])]


def reply_timings(reply: dict[str, Any]) -> dict[str, float]:
    """llama.cpp's own timings: cache_n, prompt_n, prompt_ms, predicted_n, predicted_ms;
    with speculative decoding also draft_n and draft_n_accepted (absent: nothing drafted)."""
    return dict(reply.get("timings", {}))


def build_info(xllamacpp: Any) -> dict[str, Any]:
    """Version of the binding and of the llama.cpp it was built from."""
    info = dict(getattr(xllamacpp, "BUILD_INFO", {}) or {})
    return {
        "xllamacpp_version": getattr(xllamacpp, "__version__", "unknown"),
        "llama_cpp_commit": info.get("commit", "unknown"),
        "llama_cpp_build_number": info.get("build_number"),
        "compiler": info.get("compiler"),
        "build_target": info.get("build_target"),
        "cpu_features": xllamacpp.get_system_info().strip(),
    }
