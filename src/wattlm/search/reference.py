"""The baseline's next-token distribution, for fidelity (KL divergence, top-1 agreement),
computed once per model and kept on disk.

Every trial of a search is scored against the same reference: the float baseline's
log-probabilities on a fixed slice of the test text (windows of :data:`WINDOW` tokens, the
first :data:`CONTEXT` only context, :data:`SCORED_TOKENS` scored positions; see
:mod:`wattlm.bench.fidelity`). It depends only on the weights and the text, so it is
cached by model fingerprint under the wattlm cache
(``$WATTLM_CACHE/optimize/reference/<sha256>.safetensors``), written atomically (a file
is whole or absent, even after SIGKILL); a damaged file is recomputed, never an error.
A process keeps the references it has read (:func:`load_cached`), so a worker reads the
file once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from wattlm.bench.fidelity import Reference, load_reference, reference_distribution, save_reference
from wattlm.errors import WattlmError

#: tokens per scored window, of which the first CONTEXT only give context: the perplexity
#: window (512, stride 256), so that every reference window is also a perplexity window
#: and a trial's runtime scores it once for both (:class:`~wattlm.bench.fidelity.SharedWindows`)
WINDOW = 512
CONTEXT = 256
#: scored positions (a 49k-token vocabulary takes 100 MB in float16)
SCORED_TOKENS = 1024
#: bump when the reference's computation changes (old files are then ignored)
REFERENCE_VERSION = 2

_LOADED: dict[str, Reference] = {}


def reference_key(fingerprint: str, data: str, device: str) -> dict[str, Any]:
    """What a reference depends on.

    Example:
        >>> reference_key("ab12", "wiki-sample", "cpu")["scored_tokens"]
        1024
    """
    return {
        "model": fingerprint,
        "data": data,
        "split": "test",
        "window": WINDOW,
        "context": CONTEXT,
        "scored_tokens": SCORED_TOKENS,
        "device": device,
        "version": REFERENCE_VERSION,
    }


def reference_path(key: dict[str, Any]) -> Path:
    """The cache file of the reference for ``key``."""
    from wattlm.assets.cache import cache_dir

    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return cache_dir() / "optimize" / "reference" / f"{digest}.safetensors"


def ensure_reference(base: Any, *, fingerprint: str, data: str, device: str) -> Path:
    """The path of the baseline's reference, computed and saved if missing or damaged.

    Args:
        base: the loaded float baseline (``LoadedModel``).
        fingerprint: SHA-256 of its weights (the cache key).
        data: the text set; the reference scores the start of its test split.
        device: where the baseline runs.
    """
    from wattlm.data.text import load_text

    path = reference_path(reference_key(fingerprint, data, device))
    if path.is_file():
        try:
            load_cached(path)
            return path
        except WattlmError:
            path.unlink(missing_ok=True)  # damaged: computed again below
    ids = base.tokenizer(load_text(data, split="test")).input_ids
    ref = reference_distribution(
        base.model, ids, window=WINDOW, context=CONTEXT, max_tokens=SCORED_TOKENS
    )
    save_reference(ref, path)
    _LOADED[str(path)] = ref
    return path


def load_cached(path: str | Path) -> Reference:
    """The reference in ``path``, read once per process."""
    key = str(path)
    if key not in _LOADED:
        _LOADED[key] = load_reference(path)
    return _LOADED[key]
