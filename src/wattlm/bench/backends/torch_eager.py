"""The reference backend: a ``transformers`` model run eagerly by PyTorch, greedy decoding
with a KV cache, exactly as ``generate`` would but split into prefill and decode calls."""

from __future__ import annotations

from typing import Any

import torch

from wattlm.bench.backends.base import Backend
from wattlm.errors import WattlmError


class TorchBackend(Backend):
    """Greedy decoding with a ``DynamicCache``; only the last position's logits computed.

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> backend = TorchBackend(tiny_causal_lm().model, threads=1)
        >>> [len(seq) for seq in backend.generate([[1, 2, 3], [4, 5, 6]], new_tokens=4)]
        [4, 4]
    """

    name = "torch"

    @classmethod
    def auto_selects(cls, loaded: Any) -> bool:
        return True

    @classmethod
    def options(
        cls, loaded: Any, config: Any, batch_size: int, exported: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"model": loaded.model, "threads": config.resolved_threads}

    def __init__(self, model: torch.nn.Module, *, threads: int | None = None) -> None:
        if threads is not None:
            if threads < 1:
                raise WattlmError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        self.model = model
        self.device = next(model.parameters()).device
        self._cache: Any = None
        self._next: torch.Tensor | None = None

    @torch.inference_mode()
    def prefill(self, prompts: list[list[int]]) -> list[int]:
        from transformers import DynamicCache

        ids = torch.tensor(prompts, dtype=torch.long, device=self.device)
        self._cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, cache=self._cache, use_cache=True, logits_to_keep=1)
        self._next = out.logits[:, -1].argmax(-1)
        return self._next.tolist()

    @torch.inference_mode()
    def decode(self, steps: int) -> list[list[int]]:
        if self._next is None:
            raise RuntimeError("decode() called before prefill()")
        produced = []
        for _ in range(steps):
            out = self.model(
                input_ids=self._next[:, None],
                cache=self._cache,
                use_cache=True,
                logits_to_keep=1,
            )
            self._next = out.logits[:, -1].argmax(-1)
            produced.append(self._next)
        if not produced:
            return [[] for _ in range(self._next.shape[0])]
        return torch.stack(produced, dim=1).tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(self.device),
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "attention": getattr(self.model.config, "_attn_implementation", None),
        }

    def close(self) -> None:
        self._cache = None
        self._next = None
