"""Healed weights, computed once per search: prune → ``heal`` → the rest of the stages.

A trial whose stages include ``heal`` (a recovery fine-tune, :mod:`wattlm.compress.heal`)
costs far more to build than to measure, and many trials share the same healed model (one
pruned+healed model exported at several GGUF types, or run at several batch sizes). The
stages up to and including the last ``heal`` are applied once; the model they leave is
saved in the run's cache folder (``cache/heal/<digest>.safetensors``, keyed by those
stages, with the compression log and the healing figures beside it in ``<digest>.json``),
and every later trial with the same prefix rebuilds it: a copy of the baseline, the
prefix's structural stages again (pruning is deterministic and cheap; only healing is
not), then the healed weights loaded over them (safetensors: tensors only, nothing is
unpickled), and only the stages after the prefix applied.

Both files are written atomically (a temporary file renamed into place), the ``.json``
last: a reader that finds the ``.json`` finds a whole weights file, and a search killed half-way
leaves no half-file under either name.

The heal entry a trial's record carries is the healing cost of its weights, charged to
every trial that uses them (it is the cost a user pays once to get that model), with
``cached: true`` on the trials that reused them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Any

HEAL = "heal"


def heal_prefix(stages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The stages up to and including the last ``heal`` (``None``: no ``heal``).

    Example:
        >>> s = [{"method": "prune-ffn"}, {"method": "heal"}, {"method": "int4-weight"}]
        >>> [x["method"] for x in heal_prefix(s)]
        ['prune-ffn', 'heal']
        >>> heal_prefix([{"method": "int4-weight"}]) is None
        True
    """
    last = max((i for i, s in enumerate(stages) if s.get("method") == HEAL), default=None)
    return None if last is None else [dict(s) for s in stages[: last + 1]]


def cache_path(cache_dir: str | Path, prefix: list[dict[str, Any]]) -> Path:
    """Where the weights ``prefix`` leaves are cached (``.safetensors``; figures in ``.json``).

    Example:
        >>> p = cache_path("/r/cache", [{"method": "heal", "steps": 5}])
        >>> p.parent.as_posix(), p.suffix
        ('/r/cache/heal', '.safetensors')
    """
    text = json.dumps(prefix, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Path(cache_dir) / "heal" / f"{digest}.safetensors"


def entry_from_log(log: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A record's ``heal`` entry from a compression log (several ``heal`` stages add up).

    Example:
        >>> log = [{"method": "prune-ffn"}, {"method": "heal", "steps": 50, "time_s": 2.0,
        ...        "energy_j": 40.0, "energy_source": "estimate:cpu-v2"}]
        >>> entry_from_log(log)
        {'energy_j': 40.0, 'energy_source': 'estimate:cpu-v2', 'steps': 50, 'time_s': 2.0}
    """
    heals = [e for e in log if e.get("method") == HEAL]
    if not heals:
        return None
    energies = [e.get("energy_j") for e in heals]
    sources = sorted({str(e.get("energy_source")) for e in heals if e.get("energy_source")})
    return {
        "energy_j": None if any(x is None for x in energies) else float(sum(energies)),
        "energy_source": "+".join(sources) or None,
        "steps": int(sum(e.get("steps") or 0 for e in heals)),
        "time_s": round(float(sum(e.get("time_s") or 0.0 for e in heals)), 3),
    }


def cached_entry(cache_dir: str | Path | None, stages: list[dict[str, Any]]) -> dict | None:
    """The ``heal`` entry of weights healed earlier in this search (``None``: not cached, or
    no ``heal`` in ``stages``)."""
    prefix = heal_prefix(stages)
    if prefix is None or cache_dir is None:
        return None
    meta = cache_path(cache_dir, prefix).with_suffix(".json")
    if not meta.is_file():
        return None
    heal = json.loads(meta.read_text(encoding="utf-8"))["heal"]
    return None if heal is None else {**heal, "cached": True}


def compress_copy(
    base_model: Any,
    stages: list[dict[str, Any]],
    *,
    tokenizer: Any,
    data: str,
    cache_dir: str | Path | None,
    timings: dict[str, float] | None = None,
) -> tuple[Any, list[dict[str, Any]], dict[str, Any] | None]:
    """A compressed copy of ``base_model``: (model, compression log, ``heal`` entry).

    The stages up to the last ``heal`` come from the cache when another trial of this
    search healed the same weights; otherwise they run and their result is cached.
    ``timings`` (when given) gets ``copy_s``, the copy of the float model.
    """
    from wattlm.search.evaluate import apply_stages

    def fresh_copy() -> Any:
        from wattlm.bench.isolated import add_timing

        started = time.perf_counter()
        model = copy.deepcopy(base_model)
        if timings is not None:
            add_timing(timings, "copy_s", time.perf_counter() - started)
        return model

    prefix = heal_prefix(stages)
    if prefix is None or cache_dir is None:
        model = fresh_copy()
        log = apply_stages(model, stages, tokenizer=tokenizer, data=data)
        return model, log, entry_from_log(log)
    path = cache_path(cache_dir, prefix)
    model = fresh_copy()
    try:
        loaded = _load(path, model, prefix, tokenizer=tokenizer, data=data)
    except Exception:  # a damaged or foreign file: heal again, over a fresh copy
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        model, loaded = fresh_copy(), None
    if loaded is not None:
        first, heal = loaded
        heal = None if heal is None else {**heal, "cached": True}
    else:
        first = apply_stages(model, prefix, tokenizer=tokenizer, data=data)
        heal = entry_from_log(first)
        _save(path, model, first, heal)
        heal = None if heal is None else {**heal, "cached": False}
    rest = apply_stages(model, stages[len(prefix) :], tokenizer=tokenizer, data=data)
    return model, [*first, *rest], heal


def _load(
    path: Path, model: Any, prefix: list[dict[str, Any]], *, tokenizer: Any, data: str
) -> tuple[list[dict[str, Any]], dict[str, Any] | None] | None:
    """Rebuild the cached healed model in ``model`` (a fresh copy of the baseline): the
    prefix's stages without ``heal`` give it the healed model's shapes, then the healed
    weights are loaded over them. ``None`` (``model`` untouched): nothing cached."""
    meta = path.with_suffix(".json")
    if not (meta.is_file() and path.is_file()):
        return None
    from safetensors.torch import load_model

    from wattlm.search.evaluate import apply_stages

    info = json.loads(meta.read_text(encoding="utf-8"))
    structural = [s for s in prefix if s.get("method") != HEAL]
    apply_stages(model, structural, tokenizer=tokenizer, data=data)
    device = str(next(model.parameters()).device)
    load_model(model, str(path), strict=True, device=device)
    return info["log"], info["heal"]


def _save(path: Path, model: Any, log: list[dict[str, Any]], heal: dict | None) -> None:
    from safetensors.torch import save_model

    from wattlm._files import atomic_path, write_json

    with atomic_path(path) as tmp:
        save_model(model, str(tmp))
    write_json(path.with_suffix(".json"), {"log": _plain(log), "heal": heal})


def _plain(obj: Any) -> Any:
    """``obj`` with anything JSON cannot hold as text (a compression log is mostly plain)."""
    return json.loads(json.dumps(obj, default=str))
