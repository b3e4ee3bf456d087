"""What the graph runtimes (ONNX Runtime, OpenVINO) share: a KV-cache step function run
greedily, and weight formats of their own.

A subclass runs one forward pass of the step function (:meth:`StepGraphBackend._forward`:
token ids and the cache in, logits out, the new cache kept) and builds an empty cache
(:meth:`StepGraphBackend._empty_cache`); prefill, decode and the greedy choice are here,
once. Its weight formats are one class (``weights_format``, with ``parse``, ``problem``
and a canonical ``str``) stored in one :class:`~wattlm.bench.config.BenchConfig` field
(``weights_field``).

Example:
    >>> from wattlm.bench.backends import backend_class
    >>> [backend_class(b).weights_field for b in ("onnxruntime", "openvino")]
    ['onnx_weights', 'openvino_weights']
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from wattlm.bench.backends.base import Backend
from wattlm.errors import WattlmError

__all__ = ["StepGraphBackend"]


class StepGraphBackend(Backend):
    """Greedy prefill/decode of a KV-cache step function; weight formats of the runtime's own.

    Instances set ``batch_size`` and call :meth:`_reset` in their constructor.
    """

    #: the weight-format class (``parse(text)``, ``problem(inputs)``, canonical ``str``)
    weights_format: ClassVar[Any] = None
    #: the BenchConfig field holding the format
    weights_field: ClassVar[str] = ""
    #: the formats a search tries when its space names none
    default_formats: ClassVar[tuple[str, ...]] = ()

    # -- weight formats ---------------------------------------------------------------------
    @classmethod
    def weight_option(cls) -> str | None:
        return "weights"

    @classmethod
    def weight_formats(cls, values: Any = None, where: str = "") -> tuple[str, ...]:
        """Canonical weight formats (``None``: :attr:`default_formats`).

        Example:
            >>> from wattlm.bench.backends import backend_class
            >>> backend_class("onnxruntime").weight_formats(["int4", "int4-b64"])
            ('int4-b32-acc4', 'int4-b64-acc4')
        """
        where = where or cls.name
        chosen = cls.default_formats if values is None else values
        chosen = chosen if isinstance(chosen, (list, tuple)) else (chosen,)
        out = []
        for value in chosen:
            try:
                out.append(str(cls.weights_format.parse(value)))
            except WattlmError as err:
                raise WattlmError(f"{where}: {err.message}", hint=err.hint) from None
        if len(set(out)) != len(out):
            raise WattlmError(f"{where} names a weight format twice: {out}")
        return tuple(out)

    @classmethod
    def weight_format_problem(cls, value: str, inputs: dict[str, int]) -> str | None:
        return cls.weights_format.parse(value).problem(inputs)

    @classmethod
    def weight_config(cls, value: str | None) -> dict[str, Any]:
        return {cls.weights_field: str(cls.weights_format.parse(value or "fp32"))}

    @classmethod
    def run_dtype(cls, config: Any, details: dict[str, Any]) -> str:
        """``float32``, or the runtime's weight format (e.g. ``int4-b32-acc4``)."""
        weights = str(cls.weights_format.parse(getattr(config, cls.weights_field)))
        return "float32" if weights == "fp32" else weights

    # -- the greedy loop ----------------------------------------------------------------------
    def _forward(self, ids: np.ndarray, cache: list[Any]) -> np.ndarray:
        """One forward pass at ``self._length`` tokens; keeps the new cache in
        ``self._cache``; returns float32 logits ``[batch, positions, vocab]``."""
        raise NotImplementedError

    def _empty_cache(self, batch: int) -> list[Any]:
        raise NotImplementedError

    def _reset(self) -> None:
        self._cache: list[Any] | None = None
        self._next: np.ndarray | None = None
        self._length = 0
        self.last_logits: np.ndarray | None = None

    def _step(self, ids: np.ndarray, cache: list[Any]) -> np.ndarray:
        """One forward pass; returns the next token of each sequence (greedy)."""
        self.last_logits = self._forward(ids, cache)[:, -1]
        return self.last_logits.argmax(-1).astype(np.int64)

    def prefill(self, prompts: list[list[int]]) -> list[int]:
        lengths = {len(p) for p in prompts}
        if not prompts or len(lengths) != 1 or 0 in lengths or len(prompts) > self.batch_size:
            raise WattlmError(
                f"prefill needs 1 to {self.batch_size} non-empty prompts of equal length",
                hint=f"got {len(prompts)} prompts of lengths {sorted(lengths)}",
            )
        ids = np.asarray(prompts, dtype=np.int64)
        self._length = ids.shape[1]
        self._next = self._step(ids, self._empty_cache(len(prompts)))
        return self._next.tolist()

    def decode(self, steps: int) -> list[list[int]]:
        if self._next is None or self._cache is None:
            raise RuntimeError("decode() called before prefill()")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise WattlmError(f"steps must be an integer >= 0, got {steps!r}")
        produced = np.empty((self._next.shape[0], steps), dtype=np.int64)
        for k in range(steps):
            self._length += 1
            self._next = self._step(self._next[:, None], self._cache)
            produced[:, k] = self._next
        return produced.tolist()

    def close(self) -> None:
        self._cache = None
        self._next = None
