"""One trial: build the candidate's model from the baseline, bench it, return its figures.

Steps, all through wattlm's own verbs:

1. copy the baseline float model (``copy.deepcopy``) and apply the candidate's recipe
   stages (``compress_``); a model healed by an earlier trial of the search (the stages up
   to ``heal``) is loaded from the run's cache instead (:mod:`wattlm.search.heal_cache`);
2. llama.cpp: export the result with ``export_gguf`` at the candidate's ``qtype`` into the
   trial folder, and load the file's dequantized weights back into the torch copy, so that
   perplexity is measured (by torch, as ``bench`` does) on the weights llama.cpp runs;
3. ``bench`` with one backend and one batch size at the stage's settings; the run folder
   (``config.json`` + ``result.json``) is the trial folder's ``screen/`` or ``full/``.

An evaluator is any picklable callable ``spec -> outcome``; tests pass synthetic ones, and
Ray ships it to its workers. :class:`BenchEvaluator` is the real one.
"""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from wattlm.bench.backends import backend_class
from wattlm.bench.phases import stopping
from wattlm.bench.served_quality import put_served, served_entry
from wattlm.search import heal_cache, screen
from wattlm.search.candidate import Candidate
from wattlm.search.config import StageSettings
from wattlm.search.metrics import empty_metrics, metrics_from_result
from wattlm.search.reference import load_cached

#: the per-stage breakdown of a trial's wall time (``timings_s`` of its record), seconds:
#: copy of the float model, compression stages, GGUF export (and the dequantized reload),
#: tokenizing the texts, perplexity (torch), the backend's own export (ONNX), quality on
#: the runtime that serves (its own perplexity, KL against the baseline), starting the
#: measurement process, building the backend (model load), the bench runs, the rest
TIMING_KEYS = (
    "copy_s",
    "compress_s",
    "export_s",
    "tokenize_s",
    "quality_s",
    "served_quality_s",
    "process_start_s",
    "model_load_s",
    "bench_s",
    "other_s",
)

#: (model spec, device) -> the baseline model, loaded once per process
_BASE_MODELS: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class TrialSpec:
    """Everything needed to measure one candidate at one stage (plain, picklable values)."""

    number: int
    candidate: Candidate
    stage: str  # "screen" | "full"
    settings: StageSettings
    objective: str
    model: str
    data: str
    meter: str = "auto"
    #: which energy view the objective reads: ``total`` or ``marginal``
    energy_view: str = "total"
    device: str = "cpu"
    ppl_max_length: int = 512
    ppl_stride: int = 256
    out_dir: str | None = None
    #: perplexity already measured on the same weights at this stage (then not re-measured)
    quality: dict[str, Any] | None = None
    quality_from: int | None = None
    #: the peer: the model's own GGUF file on llama.cpp, as is
    peer: bool = False
    notes: tuple[str, ...] = field(default=())
    #: folder of the run's caches (GGUF exports by weights); ``None``: no cache
    cache_dir: str | None = None
    #: the baseline's next-token distribution (:mod:`wattlm.search.reference`): trials
    #: measure KL divergence and top-1 agreement against it; ``None``: no fidelity
    reference_path: str | None = None
    #: screen stage: a perplexity above this ends the trial before its bench (quality first,
    #: :mod:`wattlm.search.screen`); ``None``: no such rung
    quality_limit: float | None = None
    #: screen stage: the baseline's screen perplexity (what :class:`~wattlm.search.screen.
    #: PairedRung` compares with, token by token); ``None``: no early stop while scoring
    baseline_perplexity: float | None = None
    #: screen stage: a mean KL divergence from the baseline above this (nats/token) ends the
    #: trial before its bench too (the KL budget); ``None``: no KL bound
    kl_limit: float | None = None
    #: screen stage: decode J/token above which the bench stops (a clear loser)
    stop_above: float | None = None


class Evaluator(Protocol):
    def __call__(self, spec: TrialSpec) -> dict[str, Any]:
        """Return ``{"metrics", "quality", "result_path", "energy_source", "notes", "error"}``."""
        ...


def failed_outcome(error: str) -> dict[str, Any]:
    return {
        "metrics": empty_metrics(),
        "quality": None,
        "result_path": None,
        "energy_source": None,
        "notes": [],
        "error": error,
    }


def register_base_model(spec: str, device: str, loaded: Any) -> None:
    """Give this process's evaluators an already loaded baseline (the driver's copy)."""
    _BASE_MODELS[(spec, device)] = loaded


def base_model(spec: str, device: str) -> Any:
    """The baseline model of this process, loaded on first use (float32)."""
    key = (spec, device)
    if key not in _BASE_MODELS:
        from wattlm.models.load import load_model

        _BASE_MODELS[key] = load_model(spec, device=device)
    return _BASE_MODELS[key]


def apply_stages(model: Any, stages: list[dict[str, Any]], *, tokenizer: Any, data: str) -> list:
    """Apply recipe stages to ``model`` in place; return the compression log."""
    if not stages:
        return []
    from wattlm.compress.base import CompressConfig
    from wattlm.compress.recipe import Recipe, apply_recipe

    recipe = Recipe(
        stages=tuple(CompressConfig.from_dict(dict(s)) for s in stages), calibration_data=data
    )
    return apply_recipe(model, recipe, tokenizer=tokenizer)


def build_variant(
    base: Any,
    spec: TrialSpec,
    folder: Path,
    timings: dict[str, float] | None = None,
    info: dict[str, Any] | None = None,
) -> tuple[Any, int, list[str]]:
    """The model a trial runs, the bytes of its weights as run, and notes about it
    (``timings``, when given, gets ``copy_s``, ``compress_s`` and ``export_s``; ``info``
    gets ``heal``: the healing cost of the weights, :mod:`wattlm.search.heal_cache`)."""
    from wattlm.bench.isolated import add_timing
    from wattlm.models.fingerprint import weight_bytes
    from wattlm.models.load import LoadedModel

    cand = spec.candidate
    if spec.peer:
        return base, base.gguf_path.stat().st_size, ["llama.cpp runs the model's own GGUF file"]
    stages = cand.effective_stages()
    gguf = backend_class(cand.backend).runs_gguf
    replaced = [s["method"] for s in cand.stages if s not in stages]
    own = (  # a backend with weight formats of its own, not GGUF (ONNX Runtime)
        [f"stage(s) {', '.join(replaced)} not applied: {cand.backend} runs {cand.qtype} weights"]
        if replaced and not gguf
        else []
    )
    if not stages and not gguf:
        return base, weight_bytes(base.model), own
    timings = {} if timings is None else timings
    info = {} if info is None else info
    label = f"{base.spec} [trial {spec.number}: {cand.label()}]"
    cached = gguf_cache_path(spec)
    if gguf and spec.quality is not None and cached is not None and cached.is_file():
        # the same weights were exported before and their perplexity is known: no copy,
        # no compression, no export; llama.cpp runs the cached file
        started = time.perf_counter()
        gguf_path = _place(cached, folder / "model.gguf")
        add_timing(timings, "export_s", time.perf_counter() - started)
        info["heal"] = heal_cache.cached_entry(spec.cache_dir, stages)
        note = (
            f"llama.cpp runs {gguf_path.name} ({cand.qtype}), exported by wattlm earlier in "
            "this search for the same weights"
        )
        loaded = LoadedModel(
            base.model, base.tokenizer, label, gguf_path, "gguf", base.task, [note]
        )
        return loaded, gguf_path.stat().st_size, [note]
    started, copied_before = time.perf_counter(), timings.get("copy_s", 0.0)
    model, log, info["heal"] = heal_cache.compress_copy(
        base.model,
        stages,
        tokenizer=base.tokenizer,
        data=spec.data,
        cache_dir=spec.cache_dir,
        timings=timings,
    )  # healed weights come from the run's cache when another trial healed them
    copied = timings.get("copy_s", 0.0) - copied_before
    add_timing(timings, "compress_s", time.perf_counter() - started - copied)
    if not gguf:
        loaded = LoadedModel(model, base.tokenizer, label, task=base.task, compression=log)
        return loaded, weight_bytes(model), own
    from wattlm.export.gguf_weights import load_gguf_weights_
    from wattlm.export.gguf_writer import export_gguf

    gguf_path = folder / "model.gguf"
    started = time.perf_counter()
    export_gguf(model, base.tokenizer, gguf_path, qtype=cand.qtype, tokenizer_gguf=base.gguf_path)
    load_gguf_weights_(model, gguf_path)
    if cached is not None:
        _place(gguf_path, cached)
    add_timing(timings, "export_s", time.perf_counter() - started)
    note = (
        f"llama.cpp runs {gguf_path.name} ({cand.qtype}), exported by wattlm; perplexity is "
        "measured by torch on that file's weights, dequantized"
    )
    dropped = [s["method"] for s in cand.stages if s not in stages]
    notes = [note]
    if dropped:
        notes.append(
            f"stage(s) {', '.join(dropped)} not applied: llama.cpp quantizes by the GGUF type"
        )
    loaded = LoadedModel(
        model, base.tokenizer, label, gguf_path, "gguf", base.task, [note], compression=log
    )
    return loaded, gguf_path.stat().st_size, notes


def gguf_cache_path(spec: TrialSpec) -> Path | None:
    """Where the GGUF export of ``spec``'s weights is cached (by stages and GGUF type).

    Example:
        >>> from wattlm.search.candidate import Candidate
        >>> from wattlm.search.config import SCREEN
        >>> c = Candidate("none", {}, (), "llamacpp", "q8_0", 8, 2)
        >>> spec = TrialSpec(1, c, "screen", SCREEN, "decode-energy", "m", "d", cache_dir="/r/cache")
        >>> str(gguf_cache_path(spec)).startswith("/r/cache/gguf/q8_0-")
        True
    """
    cand = spec.candidate
    if spec.cache_dir is None or spec.peer or not backend_class(cand.backend).runs_gguf:
        return None
    import hashlib

    digest = hashlib.sha256(cand.weights_key().encode()).hexdigest()[:16]
    return Path(spec.cache_dir) / "gguf" / f"{cand.qtype}-{digest}.gguf"


def _place(source: Path, target: Path) -> Path:
    """Put a copy of ``source`` at ``target`` atomically (a hard link where possible): a
    reader never sees a half-written file at ``target``, even after SIGKILL."""
    import os
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and os.path.samefile(source, target):
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def bench_config(spec: TrialSpec, model: Any) -> Any:
    from wattlm.bench.config import BenchConfig
    from wattlm.models.load import DTYPES

    dtype = str(next(model.model.parameters()).dtype).removeprefix("torch.")
    s = spec.settings
    return BenchConfig(
        model=spec.model,
        data=spec.data,
        backends=(spec.candidate.backend,),
        batch_sizes=(spec.candidate.batch_size,),
        prompt_tokens=s.prompt_tokens,
        new_tokens=s.new_tokens,
        warmup=s.warmup,
        repeats=s.repeats,
        threads=spec.candidate.threads,
        dtype=dtype if dtype in DTYPES else "float32",
        device=spec.device,
        meter=spec.meter,
        quality=spec.quality is None,
        ppl_max_length=spec.ppl_max_length,
        ppl_stride=spec.ppl_stride,
        ppl_max_tokens=s.ppl_max_tokens,
        runtime=dict(spec.candidate.runtime),
        **backend_class(spec.candidate.backend).weight_config(spec.candidate.qtype),
    )


@dataclass(frozen=True)
class BenchEvaluator:
    """Measures a trial with :func:`wattlm.bench.runner.bench` (the real evaluator)."""

    def __call__(self, spec: TrialSpec) -> dict[str, Any]:
        try:
            return self._evaluate(spec)
        except Exception as err:  # a failed trial is recorded, the search goes on
            from wattlm.errors import WattlmError

            text = str(err) if isinstance(err, WattlmError) else f"{type(err).__name__}: {err}"
            return failed_outcome(text.splitlines()[0] if text else type(err).__name__)
        finally:
            gc.collect()

    def _evaluate(self, spec: TrialSpec) -> dict[str, Any]:
        from wattlm.bench.runner import bench, write_run

        base = base_model(spec.model, spec.device)
        with tempfile.TemporaryDirectory(prefix="wattlm-trial-") as scratch:
            folder = Path(spec.out_dir) if spec.out_dir else Path(scratch)
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            timings: dict[str, float] = {}
            info: dict[str, Any] = {}
            loaded, bytes_as_run, notes = build_variant(base, spec, folder, timings, info)
            heal = {"heal": info["heal"]} if info.get("heal") is not None else {}
            # the screen's rungs (wattlm.search.screen): quality first, then a bench that
            # stops early; a measured perplexity is handed to bench like a reused one
            first = screen.quality_first(loaded, spec, timings)
            if screen.outside_quality(spec, first):
                outcome = screen.skipped_outcome(first, bytes_as_run, notes)
                seconds = time.perf_counter() - started
                timed = {"seconds": seconds, "timings_s": breakdown(timings, seconds)}
                return {**outcome, **timed, **heal}
            measured = replace(spec, quality=first) if first is not None else spec
            cfg = bench_config(measured, loaded)
            reference = None
            if spec.reference_path is not None and measured.quality is None:
                reference = load_cached(spec.reference_path)
            with stopping(screen.stop_rule(spec)):
                result = bench(
                    cfg, model=loaded, progress=False, timings=timings, reference=reference
                )
            backend = spec.candidate.backend
            if first is not None:
                put_served(result, backend, first)
            if spec.quality is not None:
                put_served(result, backend, spec.quality)
                source = "the baseline" if spec.quality_from == 0 else f"trial {spec.quality_from}"
                notes.append(f"perplexity was measured once on these weights ({source}) and reused")
            result["notes"] = [*result["notes"], *notes, *spec.notes]
            result_path = None
            if spec.out_dir:
                run_dir = folder / spec.stage
                write_run(run_dir, cfg.to_dict(), result)
                result_path = str(run_dir / "result.json")
            # a backend that runs an export of its own (ONNX Runtime) runs those bytes
            export = result["runs"][0]["backend_details"].get("export") or {}
            bytes_as_run = export.get("disk_bytes") or bytes_as_run
            metrics = metrics_from_result(
                result,
                objective=spec.objective,
                weight_bytes=bytes_as_run,
                energy_view=spec.energy_view,
            )
            del loaded
            seconds = time.perf_counter() - started
            early_stop = screen.pruned_reason(spec, metrics)
            return {
                "metrics": metrics,
                "quality": served_entry(result, spec.candidate.backend),
                "result_path": result_path,
                "energy_source": result["energy"]["source"],
                "notes": [*notes, early_stop] if early_stop else notes,
                "error": None,
                "early_stop": early_stop,
                "seconds": seconds,
                "timings_s": breakdown(timings, seconds),
                **heal,
            }


def breakdown(timings: dict[str, float], total_s: float) -> dict[str, float]:
    """Every key of :data:`TIMING_KEYS` (0.0 when a step did not run), rounded to ms;
    ``other_s`` is what the named steps leave of ``total_s``.

    Example:
        >>> b = breakdown({"bench_s": 2.0, "quality_s": 0.5}, 3.0)
        >>> b["bench_s"], b["copy_s"], b["other_s"]
        (2.0, 0.0, 0.5)
    """
    out = {k: round(timings.get(k, 0.0), 3) for k in TIMING_KEYS if k != "other_s"}
    out["other_s"] = round(max(0.0, total_s - sum(timings.get(k, 0.0) for k in out)), 3)
    return out
