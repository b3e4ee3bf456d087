"""What a load test sends and when: prompts cut from text, arrival times, output lengths.

Prompts are consecutive word windows of a text (the embedded ``wiki-sample`` corpus by
default), each ``prompt_words`` long (a range is drawn uniformly per request), optionally
after one shared prefix (the same first ``prefix_words`` words for every request, as a
shared system prompt). Arrivals are fixed-rate (every ``1/rate`` s), Poisson (exponential
gaps of mean ``1/rate``) or, with no rate, all at once (the concurrency limit paces them).
Everything is drawn from one seeded generator, so a workload repeats exactly.

Example:
    >>> w = make_workload("one two three four five six seven eight nine ten", requests=3,
    ...                   prompt_words=(2, 2), max_tokens=(4, 4), prefix_words=1,
    ...                   rate=2.0, arrival="fixed", seed=0)
    >>> [r.prompt for r in w]
    ['one two three', 'one four five', 'one six seven']
    >>> [r.at_s for r in w], [r.max_tokens for r in w]
    ([0.0, 0.5, 1.0], [4, 4, 4])
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from wattlm.errors import WattlmError

ARRIVALS = ("poisson", "fixed")


@dataclass(frozen=True)
class PlannedRequest:
    """One request of a workload: when to send it, its prompt, its output length."""

    index: int
    at_s: float
    prompt: str
    max_tokens: int


def _range(name: str, bounds: tuple[int, int], minimum: int) -> tuple[int, int]:
    lo, hi = bounds
    if lo < minimum or hi < lo:
        raise WattlmError(f"{name} must be MIN..MAX with {minimum} <= MIN <= MAX, got {lo}..{hi}")
    return lo, hi


def make_workload(
    text: str,
    *,
    requests: int,
    prompt_words: tuple[int, int],
    max_tokens: tuple[int, int],
    prefix_words: int = 0,
    rate: float | None = None,
    arrival: str = "poisson",
    seed: int = 0,
    offset_words: int = 0,
) -> list[PlannedRequest]:
    """``requests`` planned requests (see the module docstring).

    ``offset_words`` starts cutting prompts that far into the text (after the prefix), so
    successive levels of a sweep send different prompts: the same ones would hit the
    prompt cache left by the previous level.
    """
    if requests < 1:
        raise WattlmError(f"--requests must be >= 1, got {requests}")
    if arrival not in ARRIVALS:
        raise WattlmError(f"unknown arrival {arrival!r}", hint=f"one of {', '.join(ARRIVALS)}")
    if rate is not None and not rate > 0:
        raise WattlmError(f"--rate must be > 0 requests/s, got {rate}")
    p_lo, p_hi = _range("prompt words", prompt_words, 1)
    t_lo, t_hi = _range("max tokens", max_tokens, 1)
    if prefix_words < 0:
        raise WattlmError(f"prefix words must be >= 0, got {prefix_words}")
    words = text.split()
    if len(words) < prefix_words + p_hi:
        raise WattlmError(
            f"the text has {len(words)} words; a prompt needs up to {prefix_words + p_hi}",
            hint="use a longer text or shorter prompts",
        )
    rng = random.Random(seed)
    prefix = words[:prefix_words]
    body = words[prefix_words:]
    pos, t = offset_words % max(len(body) - p_hi, 1), 0.0
    out: list[PlannedRequest] = []
    for i in range(requests):
        n = rng.randint(p_lo, p_hi)
        if pos + n > len(body):
            pos = 0
        prompt = " ".join(prefix + body[pos : pos + n])
        pos += n
        if rate is not None and i > 0:
            t += 1.0 / rate if arrival == "fixed" else rng.expovariate(rate)
        out.append(PlannedRequest(i, round(t, 9), prompt, rng.randint(t_lo, t_hi)))
    return out


def parse_range(value: str, what: str) -> tuple[int, int]:
    """``"64"`` → (64, 64); ``"32..128"`` → (32, 128); WattlmError otherwise.

    Example:
        >>> parse_range("32..128", "--prompt-words")
        (32, 128)
    """
    lo, sep, hi = value.partition("..")
    try:
        pair = (int(lo), int(hi if sep else lo))
    except ValueError:
        raise WattlmError(f"{what} must be N or MIN..MAX, got {value!r}") from None
    return pair
