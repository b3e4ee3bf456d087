"""Next-token log-probabilities computed by llama.cpp, for quality measured on the runtime
that serves.

llama.cpp's server returns no log-probabilities for prompt tokens (only for the tokens it
generates), so a GGUF model's perplexity used to be computed by torch on the weights
dequantized to float: a different computation from the one a user deploys, which runs
llama.cpp's kernels with activations quantized to 8 bits in each dot product.

This module asks llama.cpp for the next closest thing: its server, started in embedding
mode with pooling ``none``, returns the final hidden state (after the output norm) of
every prompt token, computed by llama.cpp's own kernels through every layer. The logits
are that hidden state times the model's output matrix, read from the same GGUF file and
dequantized to float32. So everything but the last matrix product is llama.cpp's; the last
product differs from llama.cpp's only in not quantizing the hidden state to 8 bits. The
method is named in every figure (:data:`METHOD`) so it is never mistaken for either the
torch figure or a full llama.cpp logit dump.

The hidden states come over the server's loopback HTTP port (``/embeddings``; the
in-process binding only exposes the OpenAI route, which refuses pooling ``none``), locked
with a random API key.

Example:
    >>> with LlamaCppLogProbs("SmolLM2-135M-Instruct.Q4_1.gguf", threads=2) as fn:  # doctest: +SKIP
    ...     fn([1, 2, 3]).shape
    torch.Size([3, 49152])
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wattlm.bench.backends._llamacpp_server import FLASH_ATTN, KV_CACHE, import_xllamacpp
from wattlm.errors import WattlmError
from wattlm.export.gguf_reader import GgufTensors

__all__ = ["METHOD", "LlamaCppLogProbs"]

#: how the log-probabilities are obtained, recorded with every figure they give
METHOD = "llama.cpp hidden states (/embeddings, pooling none) x GGUF output matrix (float32)"


class LlamaCppLogProbs:
    """A log-probability function (window token ids -> ``[window, vocab]``) run by llama.cpp.

    Args:
        path: the GGUF file.
        threads: llama.cpp threads.
        kv_cache: the KV-cache type of K and V (a quantized cache changes the figures).
        flash_attn: ``auto``, ``on`` or ``off`` (a quantized KV cache needs it).
        window: the longest window scored (the server's context; llama.cpp computes the
            hidden states of a window in one micro-batch).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int,
        window: int = 512,
        kv_cache: str = "f16",
        flash_attn: str = "auto",
    ) -> None:
        self.path = Path(path)
        self.window = window
        self.kv_cache, self.flash_attn = kv_cache, flash_attn
        tensors = GgufTensors(self.path)
        name = "output.weight" if "output.weight" in tensors else "token_embd.weight"
        self._output = torch.from_numpy(np.array(tensors[name], dtype=np.float32))  # a copy
        arch = tensors.info.architecture or ""
        self._softcap = tensors.info.metadata.get(f"{arch}.final_logit_softcapping")
        self._key = secrets.token_hex(16)
        self._server = self._start(threads)
        self._url = f"{self._server.listening_address}/embeddings"
        self._wait_ready()
        # /health answers before the server's task loop has started; stopping the server in
        # that gap can hang its destructor (it joins a loop that never saw the stop). One
        # token through the loop closes the gap.
        self.hidden_states([0])

    def _start(self, threads: int) -> Any:
        x = import_xllamacpp()
        p = x.CommonParams()
        p.model.path = str(self.path)
        p.embedding = True
        p.pooling_type = x.llama_pooling_type.LLAMA_POOLING_TYPE_NONE
        p.n_ctx = p.n_batch = p.n_ubatch = self.window
        # the KV-cache type the served configuration uses changes what it computes
        kv = getattr(x.ggml_type, KV_CACHE[self.kv_cache])
        p.cache_type_k = p.cache_type_v = kv
        p.flash_attn_type = getattr(x.llama_flash_attn_type, FLASH_ATTN[self.flash_attn])
        p.n_parallel = 1
        p.cpuparams.n_threads = threads
        p.cpuparams_batch.n_threads = threads
        p.n_threads_http = 1
        p.verbosity = -1
        p.api_keys = [self._key]
        try:
            return x.Server(p)
        except (RuntimeError, ValueError) as err:
            raise WattlmError(f"llama.cpp could not load {self.path}: {err}") from None

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until the server answers ``/health`` (stopping a server that is still
        starting can hang in the binding's destructor)."""
        url = self._url.rsplit("/", 1)[0] + "/health"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise WattlmError(f"llama.cpp did not become ready within {timeout_s:.0f} s")
            time.sleep(0.05)

    def hidden_states(self, window: list[int]) -> torch.Tensor:
        """llama.cpp's final hidden state of each token of ``window``: ``[len, hidden]``."""
        if not 0 < len(window) <= self.window:
            raise WattlmError(f"a scored window holds 1..{self.window} tokens, got {len(window)}")
        body = json.dumps({"content": [list(map(int, window))]}).encode()
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        request = urllib.request.Request(self._url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=600) as reply:
                data = json.loads(reply.read())
        except urllib.error.HTTPError as err:
            detail = err.read()[:200]
            raise WattlmError(f"llama.cpp refused the scoring request: {detail!r}") from None
        hidden = torch.tensor(data[0]["embedding"], dtype=torch.float32)
        if hidden.shape[0] != len(window):
            raise WattlmError(
                f"llama.cpp returned {hidden.shape[0]} hidden states for {len(window)} tokens"
            )
        return hidden

    def __call__(self, window: list[int]) -> torch.Tensor:
        logits = self.hidden_states(window) @ self._output.T
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return torch.log_softmax(logits, dim=-1)

    def close(self) -> None:
        """Stop the server (its threads end with the object)."""
        self._server = None

    def __enter__(self) -> LlamaCppLogProbs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
