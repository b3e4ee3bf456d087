"""Benchmark work: real prompts cut from held-out text to exact token lengths."""

from __future__ import annotations

from wattlm.errors import WattlmError


def cut_prompts(token_ids: list[int], *, batch_size: int, prompt_tokens: int) -> list[list[int]]:
    """Cut ``batch_size`` consecutive, non-overlapping prompts of exactly ``prompt_tokens``.

    The same text always gives the same prompts, so every backend, precision and repeat
    processes identical work.

    Example:
        >>> cut_prompts(list(range(10)), batch_size=2, prompt_tokens=3)
        [[0, 1, 2], [3, 4, 5]]
    """
    if batch_size < 1:
        raise WattlmError(f"batch size must be >= 1, got {batch_size}")
    if prompt_tokens < 1:
        raise WattlmError(f"prompt length must be >= 1 token, got {prompt_tokens}")
    need = batch_size * prompt_tokens
    if len(token_ids) < need:
        raise WattlmError(
            f"the prompt text has {len(token_ids)} tokens; batch {batch_size} × "
            f"{prompt_tokens} tokens needs {need}",
            hint="use a longer text, a smaller batch or a shorter --prompt-tokens",
        )
    return [token_ids[i * prompt_tokens : (i + 1) * prompt_tokens] for i in range(batch_size)]


def check_context(context_length: int | None, prompt_tokens: int, new_tokens: int) -> None:
    """Fail early when prompt + generated tokens exceed the model's context window."""
    if context_length is not None and prompt_tokens + new_tokens > context_length:
        raise WattlmError(
            f"prompt ({prompt_tokens}) + new tokens ({new_tokens}) = "
            f"{prompt_tokens + new_tokens} exceeds the model's context of {context_length} tokens",
            hint="lower --prompt-tokens or --new-tokens",
        )
