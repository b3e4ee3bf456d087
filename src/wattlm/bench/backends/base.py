"""The backend interface: run a batch of equal-length prompts, prefill then greedy decode.

A backend keeps the state of the last :meth:`Backend.prefill` (KV cache, or a warm prompt
cache in llama.cpp) so that :meth:`Backend.decode` measures decode work only. The bench
runner wraps each call in its own energy window.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Backend(ABC):
    """One way of running a model.

    Subclasses set :attr:`name` and implement the three methods. ``prompts`` is a list of
    token-id lists, all of the same length (the bench cuts them to exact lengths).
    """

    name: str = ""

    @abstractmethod
    def prefill(self, prompts: list[list[int]]) -> list[int]:
        """Process the prompts and return the first greedy token of each sequence."""

    @abstractmethod
    def decode(self, steps: int) -> list[list[int]]:
        """Continue the last prefill greedily for ``steps`` forward passes per sequence.

        Returns exactly ``steps`` new token ids per sequence, all produced inside this
        call (so tokens/s and joules/token are per decode forward pass).
        """

    def generate(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        """Greedy-generate exactly ``new_tokens`` tokens per prompt (EOS ignored)."""
        first = self.prefill(prompts)
        if new_tokens == 1:
            return [[t] for t in first]
        rest = self.decode(new_tokens - 1)
        return [[f, *r] for f, r in zip(first, rest, strict=True)]

    def describe(self) -> dict[str, Any]:
        """Settings of this backend saved in the result (threads, dtype, library version)."""
        return {"name": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
