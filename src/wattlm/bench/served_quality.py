"""Quality measured on the runtime that serves, and fidelity to the original model.

``bench`` measures perplexity with torch on the loaded weights (``quality``). A runtime
that computes differently (llama.cpp's quantized dot products and kernels, ONNX Runtime's
graph) is scored again on its **own** next-token log-probabilities
(:meth:`~wattlm.bench.backends.base.Backend.log_probs`), by the same sliding windows on
the same tokens, and the result's ``runtime_quality[backend]`` carries that figure, the
method that produced it, and the torch figure as a labelled cross-check with the relative
difference between the two. A runtime that gives no log-probabilities is named in the
notes: its quality is the torch figure on the same weights, a proxy.

Given a :class:`~wattlm.bench.fidelity.Reference` (the original's next-token
distribution, computed once), ``fidelity[backend]`` holds KL divergence and top-1
agreement of each backend's own distribution against it; torch's is scored on the loaded
model, the runtimes' on their own log-probabilities.

Example:
    >>> cross_check({"value": 20.0, "backend": "torch"}, 20.5)
    {'backend': 'torch', 'value': 20.0, 'relative_difference': 0.025}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from wattlm.bench.backends import backend_class
from wattlm.bench.fidelity import (
    Reference,
    SharedWindows,
    WindowWatch,
    compare,
    torch_log_probs,
)
from wattlm.bench.quality import all_cores, perplexity

__all__ = [
    "cross_check",
    "measure_served",
    "put_served",
    "quality_tokens",
    "served_entry",
    "served_quality",
    "unscored_note",
]

#: ``method`` of a quality figure that torch measured for a runtime without log-probabilities
PROXY_METHOD = "proxy: torch on the same weights (the runtime gives no log-probabilities)"


def quality_tokens(loaded: Any, config: Any) -> list[int]:
    """The perplexity text: the first ``config.ppl_max_tokens`` tokens of the test split."""
    from wattlm.data.text import load_text

    text = load_text(config.data, split="test")
    return loaded.tokenizer(text).input_ids[: config.ppl_max_tokens]


def cross_check(torch_quality: dict[str, Any], runtime_value: float) -> dict[str, Any]:
    """The torch figure beside a runtime's, with ``(runtime - torch) / torch``."""
    value = float(torch_quality["value"])
    return {
        "backend": torch_quality.get("backend", "torch"),
        "value": value,
        "relative_difference": round((runtime_value - value) / value, 6),
    }


def served_quality(
    loaded: Any,
    config: Any,
    backends: Sequence[str],
    exported: dict[str, Any],
    *,
    token_ids: Sequence[int] | None,
    torch_quality: dict[str, Any] | None,
    reference: Reference | None,
    advance: Callable[[str], Callable[..., None]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``(runtime_quality, fidelity)`` of ``backends``, each keyed by backend name.

    Args:
        loaded: the benched model.
        config: the bench config (perplexity window, stride, threads).
        backends: the backends of the run.
        exported: what each backend runs instead of ``loaded`` (``bench``'s exports).
        token_ids: the perplexity text, tokenized (``None``: no runtime perplexity).
        torch_quality: torch's perplexity entry, the cross-check (``None``: none).
        reference: the original's distribution (``None``: no fidelity).
        advance: ``advance(label)`` returns a progress callback ``(total=...)``.
    """
    runtime: dict[str, dict[str, Any]] = {}
    fidelity: dict[str, dict[str, Any]] = {}
    for name in backends:
        cls = backend_class(name)
        if cls.log_probs_method is None:
            if reference is not None and name == "torch":
                step = advance("fidelity (torch)")
                fidelity[name] = _fidelity(reference, torch_log_probs(loaded.model), "torch")
                step(total=1)
            continue
        if token_ids is None and reference is None:
            continue
        with cls.log_probs(loaded, config, exported.get(name)) as runtime_fn:
            scorer = SharedWindows(runtime_fn, reference)  # windows both need run once
            if token_ids is not None:
                runtime[name] = _perplexity(name, cls, loaded, config, scorer, token_ids,
                                            torch_quality, advance)  # fmt: skip
            if reference is not None:
                step = advance(f"fidelity ({name})")
                fidelity[name] = _fidelity(reference, scorer, cls.log_probs_method)
                step(total=1)
    return runtime, fidelity


def served_entry(result: dict[str, Any], backend: str) -> dict[str, Any] | None:
    """The quality a configuration run on ``backend`` is judged on, from a bench result:
    the runtime's own perplexity when it has one, else torch's; with its ``fidelity`` to
    the original (when measured) as a nested key.

    Example:
        >>> r = {"quality": {"value": 20.0, "backend": "torch"},
        ...      "runtime_quality": {"llamacpp": {"value": 20.3, "backend": "llamacpp"}},
        ...      "fidelity": {"llamacpp": {"kl_mean": 0.01}}}
        >>> served_entry(r, "llamacpp")["value"], served_entry(r, "torch")["value"]
        (20.3, 20.0)
        >>> served_entry(r, "llamacpp")["fidelity"]
        {'kl_mean': 0.01}
    """
    entry = (result.get("runtime_quality") or {}).get(backend) or result.get("quality")
    if entry is None:
        return None
    fidelity = (result.get("fidelity") or {}).get(backend)
    return {**entry, **({"fidelity": fidelity} if fidelity else {})}


def put_served(result: dict[str, Any], backend: str, entry: dict[str, Any]) -> None:
    """Write a quality entry measured elsewhere (e.g. once per weights, then reused) into
    ``result``'s sections, the inverse of :func:`served_entry`.

    Example:
        >>> r = {"quality": None}
        >>> put_served(r, "llamacpp", {"value": 20.3, "backend": "llamacpp", "method": "m",
        ...                            "fidelity": {"kl_mean": 0.01}})
        >>> r["runtime_quality"]["llamacpp"]["value"], r["fidelity"]["llamacpp"]["kl_mean"]
        (20.3, 0.01)
    """
    entry = dict(entry)
    fidelity = entry.pop("fidelity", None)
    if entry.get("backend", "torch") == "torch" and "method" not in entry:
        result["quality"] = entry
    else:
        result.setdefault("runtime_quality", {})[backend] = entry
    if fidelity:
        result.setdefault("fidelity", {})[backend] = fidelity


def measure_served(
    loaded: Any,
    config: Any,
    backend: str,
    *,
    reference: Reference | None = None,
    exported: dict[str, Any] | None = None,
    watch: WindowWatch | None = None,
) -> dict[str, Any]:
    """Perplexity of ``loaded`` as ``backend`` runs it (the runtime's own log-probabilities
    when it gives them; torch's otherwise, labelled a proxy for a runtime that gives none),
    with ``fidelity`` against ``reference`` when given: the entry :func:`served_entry`
    reads from a bench result, without running the bench (the search's quality-first rung).

    Fidelity is scored on the reference's windows that lie inside the perplexity text
    (:meth:`~wattlm.bench.fidelity.Reference.within`), so the runtime scores no window for
    fidelity alone: a short perplexity slice (the search's screen) gets KL on fewer tokens.

    ``watch`` sees the paired per-token losses of each reference window as soon as it is
    scored (:class:`~wattlm.bench.fidelity.SharedWindows`) and may end the measurement by
    raising :class:`~wattlm.bench.fidelity.PairedStop`, which propagates to the caller.

    Example:
        >>> from wattlm.bench.config import BenchConfig
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> lm = tiny_causal_lm()
        >>> cfg = BenchConfig(data="README.md", ppl_max_length=32, ppl_stride=16, ppl_max_tokens=64)
        >>> e = measure_served(lm, cfg, "torch")
        >>> e["backend"], e["tokens"]
        ('torch', 63)
    """
    with all_cores():  # quality does not depend on the measured thread count
        return _measure_served(loaded, config, backend, reference, exported, watch)


def _measure_served(loaded, config, backend, reference, exported, watch) -> dict[str, Any]:
    ids = quality_tokens(loaded, config)
    if reference is not None:  # fidelity on the windows the perplexity pass runs anyway
        reference = reference.within(ids)
    cls = backend_class(backend)
    if cls.log_probs_method is not None:
        with cls.log_probs(loaded, config, exported) as runtime_fn:
            scorer = SharedWindows(runtime_fn, reference, watch)
            entry = _perplexity(backend, cls, loaded, config, scorer, ids, None, _quiet)
            if reference is not None:
                entry["fidelity"] = _fidelity(reference, scorer, cls.log_probs_method)
        return entry
    scorer = SharedWindows(torch_log_probs(loaded.model), reference, watch)
    window = min(config.ppl_max_length, loaded.context_length or config.ppl_max_length)
    model = scorer if reference is not None else loaded.model  # one pass serves both
    ppl = perplexity(model, ids, max_length=window, stride=min(config.ppl_stride, window))
    dtype = str(next(loaded.model.parameters()).dtype).removeprefix("torch.")
    entry = {**ppl.to_dict(), "data": config.data, "split": "test", "backend": "torch",
             "dtype": dtype}  # fmt: skip
    if backend != "torch":
        entry["method"] = PROXY_METHOD
    if reference is not None:
        entry["fidelity"] = _fidelity(reference, scorer, "torch")
    return entry


def _quiet(label: str) -> Callable[..., None]:
    return lambda **kw: None


def _perplexity(name, cls, loaded, config, scorer, token_ids, torch_quality, advance):
    window = min(config.ppl_max_length, loaded.context_length or config.ppl_max_length)
    step = advance(f"perplexity on {name}")
    ppl = perplexity(
        scorer,
        token_ids,
        max_length=window,
        stride=min(config.ppl_stride, window),
        on_window=lambda _done, total: step(total=total),
    )
    entry = {
        **ppl.to_dict(),
        "data": config.data,
        "split": "test",
        "backend": name,
        "dtype": cls.run_dtype(config, {}),
        "method": cls.log_probs_method,
    }
    if torch_quality is not None:
        entry["cross_check"] = cross_check(torch_quality, ppl.value)
    return entry


def _fidelity(reference: Reference, scorer: Any, method: str) -> dict[str, Any]:
    return {**compare(reference, scorer).to_dict(), "method": method}


def unscored_note(backends: Sequence[str]) -> str | None:
    """The note for runtimes whose quality is torch's figure on the same weights (a proxy).

    Example:
        >>> unscored_note(["torch", "llamacpp"]) is None
        True
    """
    proxies = [b for b in backends if b != "torch" and backend_class(b).log_probs_method is None]
    if not proxies:
        return None
    return (
        f"{', '.join(proxies)} gives no next-token log-probabilities: its quality is a "
        "proxy, torch's perplexity on the same weights"
    )
