"""``bench``: quality, size, memory, speed and energy of one model, by the protocol in
docs/measurement.md, returned as a result dict (see docs/result-format.md) and optionally saved."""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from wattlm._files import write_json
from wattlm._progress import Steps, steps
from wattlm._version import __version__
from wattlm.bench.backends import BACKENDS, backend_class
from wattlm.bench.config import BenchConfig
from wattlm.bench.fidelity import Reference
from wattlm.bench.isolated import add_timing, run_phases_in_child
from wattlm.bench.phases import run_phases, summarize_phases
from wattlm.bench.prompts import check_context, cut_prompts
from wattlm.bench.quality import all_cores, perplexity
from wattlm.bench.served_quality import quality_tokens, served_quality, unscored_note
from wattlm.data.text import load_text
from wattlm.errors import WattlmError
from wattlm.measure.base import EnergyMeter
from wattlm.measure.carbon import grid_intensity
from wattlm.measure.context import collect_context
from wattlm.measure.factory import make_meter
from wattlm.measure.memory import PeakRssSampler
from wattlm.models.load import LoadedModel, load_model
from wattlm.report.records import BenchResult, BenchRun
from wattlm.report.result import validate_result

#: version 2: every energy figure in both views (total and marginal), see result-format.md
RESULT_SCHEMA_VERSION = 2

#: the ``--backend`` choice that picks the backends for the model
AUTO = "auto"


def resolve_backends(config: BenchConfig, loaded: LoadedModel) -> list[str]:
    """The backends to run, checked before any work starts.

    ``auto`` means every backend that :meth:`~wattlm.bench.backends.base.Backend.auto_selects`
    the model (torch, plus llama.cpp when the model is a GGUF file and ``xllamacpp`` is
    installed); each backend then checks it can run the model
    (:meth:`~wattlm.bench.backends.base.Backend.check`): e.g. ``llamacpp`` needs a GGUF file,
    ``onnxruntime`` needs onnxruntime, the CPU and float32 weights.
    """
    names: list[str] = []
    for name in config.backends:
        if name == AUTO:
            names.extend(n for n in BACKENDS if backend_class(n).auto_selects(loaded))
        else:
            names.append(name)
    names = list(dict.fromkeys(names))
    for name in names:
        backend_class(name).check(config, loaded)
    return names


def _export(name: str, loaded: LoadedModel, config: BenchConfig, workdir: Path, ui: Steps):
    """What backend ``name`` runs instead of the loaded model (exported into ``workdir``)."""
    cls = backend_class(name)
    if not cls.runs_an_export():  # it runs the loaded model itself
        return None
    advance = ui.add(f"export for {name}")
    exported = cls.export(loaded, config, workdir / name)
    advance(total=1)
    return exported


def _measure(
    name, loaded, config, batch, prompts, meter, isolate, advance, exported=None, timings=None
):
    """Samples and backend details of one (backend, batch) run.

    Backends that ask for it (:attr:`~wattlm.bench.backends.base.Backend.isolated`:
    llama.cpp, ONNX Runtime) run in their own process when ``isolate`` (see
    :mod:`wattlm.bench.isolated`); torch, and any run measured by a caller-supplied meter,
    run in this process.
    """
    cls = backend_class(name)
    kwargs = cls.options(loaded, config, batch, exported)
    common = {"new_tokens": config.new_tokens, "warmup": config.warmup, "repeats": config.repeats}
    if isolate and cls.isolated:
        samples, details, _ = run_phases_in_child(
            name,
            kwargs,
            prompts,
            meter_kind=config.meter,
            device=config.device,
            timings=timings,
            **common,
        )
        advance(config.warmup + config.repeats)
        details = {**details, "process": "isolated"}
    else:
        started = time.perf_counter()
        with cls(**kwargs) as backend:
            loaded_at = time.perf_counter()
            samples = run_phases(backend, prompts, meter=meter, on_step=advance, **common)
            details = {**backend.describe(), "process": "shared"}
            if timings is not None:
                add_timing(timings, "model_load_s", loaded_at - started)
                add_timing(timings, "bench_s", time.perf_counter() - loaded_at)
    if exported is not None:
        details["export"] = exported
    return samples, details


def _quality(
    loaded: LoadedModel, config: BenchConfig, ui: Steps
) -> tuple[dict[str, Any] | None, list[int] | None]:
    """Torch's perplexity of the loaded weights, and the tokens it was measured on."""
    if not config.quality:
        return None, None

    ids = quality_tokens(loaded, config)
    window = min(config.ppl_max_length, loaded.context_length or config.ppl_max_length)
    advance = ui.add("perplexity (test split)")
    ppl = perplexity(
        loaded.model,
        ids,
        max_length=window,
        stride=min(config.ppl_stride, window),
        on_window=lambda _done, total: advance(total=total),
    )
    dtype = str(next(loaded.model.parameters()).dtype).removeprefix("torch.")
    entry = {
        **ppl.to_dict(),
        "data": config.data,
        "split": "test",
        "backend": "torch",
        "dtype": dtype,
    }
    return entry, ids


def bench(
    config: BenchConfig | None = None,
    *,
    model: LoadedModel | None = None,
    meter: EnergyMeter | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    timings: dict[str, float] | None = None,
    reference: Reference | None = None,
) -> BenchResult:
    """Benchmark a model and return the result (also written to ``out_dir`` if given).

    Args:
        config: what to run; defaults to the embedded SmolLM2 on the wiki sample.
        model: an already loaded model (then ``config.model`` only labels it).
        meter: an energy meter; by default the best available for ``config.device``.
        out_dir: folder for ``config.json`` and ``result.json`` (written atomically).
        progress: show progress bars on stderr.
        timings: a dict increased by the seconds of each step (``tokenize_s``,
            ``quality_s``, ``export_s``, ``served_quality_s``, ``process_start_s``,
            ``model_load_s``, ``bench_s``); ``optimize`` records it as a trial's breakdown.
        reference: the original model's next-token distribution
            (:func:`~wattlm.bench.fidelity.reference_distribution`): when given, the
            result's ``fidelity`` holds each backend's KL divergence and top-1 agreement.

    Each backend that computes differently from torch (llama.cpp, ONNX Runtime) has its
    perplexity measured again on its own log-probabilities: ``runtime_quality[backend]``,
    with torch's figure as a cross-check (see :mod:`wattlm.bench.served_quality`).

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> cfg = BenchConfig(model="tiny", prompt_tokens=8, new_tokens=4, batch_sizes=(1,),
        ...                   repeats=2, warmup=0, quality=False, data="README.md")
        >>> result = bench(cfg, model=tiny_causal_lm(), progress=False)  # doctest: +SKIP
    """
    config = config or BenchConfig()
    threads = config.resolved_threads
    torch.set_num_threads(threads)
    with PeakRssSampler() as rss, steps(enabled=progress) as ui, contextlib.ExitStack() as stack:
        if model is None:
            advance = ui.add(f"loading {config.model}")
            model = load_model(config.model, dtype=config.dtype, device=config.device)
            advance(total=1)
        if model.task != "causal-lm":
            raise WattlmError(f"bench measures causal LMs; {model.spec!r} is a {model.task} model")
        sync = torch.cuda.synchronize if config.device.startswith("cuda") else None
        isolate = meter is None  # a caller's own meter object cannot cross processes
        meter = meter or make_meter(config.meter, device=config.device, sync=sync)
        backends = resolve_backends(config, model)
        check_context(model.context_length, config.prompt_tokens, config.new_tokens)
        clock = _Clock(timings)
        prompt_ids = model.tokenizer(load_text(config.data, split="validation")).input_ids
        clock.lap("tokenize_s")
        with all_cores():  # quality does not depend on the measured thread count
            quality, ppl_ids = _quality(model, config, ui)
        clock.lap("quality_s")
        # scratch exports (e.g. ONNX): each run's backend details record what was exported
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wattlm-")))
        exported = {name: _export(name, model, config, workdir, ui) for name in backends}
        clock.lap("export_s")
        with all_cores():
            runtime_quality, fidelity = served_quality(
                model,
                config,
                backends,
                exported,
                token_ids=ppl_ids,
                torch_quality=quality,
                reference=reference,
                advance=ui.add,
            )
        clock.lap("served_quality_s")
        intensity = grid_intensity(config.grid_intensity_g_per_kwh)
        runs = []
        for name in backends:
            for batch in config.batch_sizes:
                prompts = cut_prompts(
                    prompt_ids, batch_size=batch, prompt_tokens=config.prompt_tokens
                )
                advance = ui.add(f"{name} batch {batch}", total=config.warmup + config.repeats)
                samples, details = _measure(
                    name,
                    model,
                    config,
                    batch,
                    prompts,
                    meter,
                    isolate,
                    advance,
                    exported[name],
                    timings,
                )
                runs.append(
                    _run_entry(
                        name,
                        batch,
                        config,
                        threads,
                        meter,
                        samples,
                        details,
                        intensity.value_g_per_kwh,
                    )
                )
    model_info = model.describe()
    result: BenchResult = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "kind": "bench",
        "wattlm_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": config.to_dict(),
        "model": model_info,
        "quality": quality,
        **({"runtime_quality": runtime_quality} if runtime_quality else {}),
        **({"fidelity": fidelity} if fidelity else {}),
        "memory": {
            "peak_rss_bytes": rss.peak_rss_bytes,
            "weights_resident_bytes": model_info["weight_bytes"],
        },
        "energy": {
            "source": meter.source,
            "meter": meter.describe(),
            "idle_subtracted": meter.idle_power_w() is not None,
            "views": dict(meter.methods),
        },
        "carbon": intensity.to_dict(),
        "runs": runs,
        "notes": _notes(model, backends, meter, measured_quality=quality is not None),
        "context": collect_context(threads),
    }
    if out_dir is not None:
        write_run(out_dir, config.to_dict(), result)
    return result


class _Clock:
    """Adds the seconds since the last lap to ``timings[key]`` (nothing when ``None``)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, key: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            add_timing(self.timings, key, now - self.last)
        self.last = now


def _run_entry(name, batch, config, threads, meter, samples, details, intensity) -> BenchRun:
    return {
        "backend": name,
        "batch_size": batch,
        "threads": threads,
        "dtype": backend_class(name).run_dtype(config, details),
        "device": config.device,
        "prompt_tokens": config.prompt_tokens,
        "new_tokens": config.new_tokens,
        "warmup": config.warmup,
        "repeats": config.repeats,
        "energy_source": meter.source,
        **summarize_phases(
            samples,
            batch_size=batch,
            prompt_tokens=config.prompt_tokens,
            new_tokens=config.new_tokens,
            cv_threshold=config.cv_threshold,
            intensity_g_per_kwh=intensity,
        ),
        "backend_details": details,
        "samples": {
            "prefill": [m.to_dict() for m in samples.prefill],
            "decode": [m.to_dict() for m in samples.decode],
        },
    }


def _notes(
    model: LoadedModel, backends: list[str], meter: EnergyMeter, *, measured_quality: bool
) -> list[str]:
    notes = list(model.notes)
    notes.extend(n for n in (backend_class(b).note for b in backends) if n)
    proxy = unscored_note(backends) if measured_quality else None
    if proxy:
        notes.append(proxy)
    if meter.source.startswith("estimate:"):
        notes.append(
            "energy is an estimate (no sensor on this machine): static power of the held "
            "cores × wall time + CPU time × dynamic power per core + DRAM (estimate:cpu-v2; "
            "estimate:cpu-tdp-v1 counts CPU time only), with a band from the model's "
            "parameter ranges; see docs/energy.md"
        )
    return notes


def write_run(out_dir: str | Path, config: dict[str, Any], result: BenchResult) -> Path:
    """Validate ``result`` and write ``config.json`` then ``result.json`` atomically."""
    validate_result(result)
    out = Path(out_dir)
    write_json(out / "config.json", config)
    write_json(out / "result.json", result)
    return out
