"""``bench``: quality, size, memory, speed and energy of one model, by the protocol in
docs/measurement.md, returned as a result dict (see docs/result-format.md) and optionally saved."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import torch

from wattlm._files import write_json
from wattlm._progress import Steps, steps
from wattlm._version import __version__
from wattlm.bench.backends import backend_class
from wattlm.bench.config import BenchConfig
from wattlm.bench.isolated import run_phases_in_child
from wattlm.bench.phases import run_phases, summarize_phases
from wattlm.bench.prompts import check_context, cut_prompts
from wattlm.bench.quality import perplexity
from wattlm.errors import WattlmError
from wattlm.measure.base import EnergyMeter
from wattlm.models.load import LoadedModel, load_model


def resolve_backends(config: BenchConfig, loaded: LoadedModel) -> list[str]:
    """The backends to run, checked before any work starts.

    ``auto`` means torch, plus llama.cpp when the model is a GGUF file and ``xllamacpp`` is
    installed. An explicit ``llamacpp`` on a model without a GGUF file is an error, and so
    is ``onnxruntime`` without onnxruntime, on a GPU, or on weights other than float32.
    """
    names: list[str] = []
    for name in config.backends:
        if name == "auto":
            names.append("torch")
            if loaded.gguf_path is not None and _has_xllamacpp():
                names.append("llamacpp")
        else:
            names.append(name)
    names = list(dict.fromkeys(names))
    if "llamacpp" in names:
        if loaded.gguf_path is None:
            raise WattlmError(
                f"the llamacpp backend needs a GGUF file; {loaded.spec!r} is not one",
                hint="pass --model path/to/model.gguf or drop --backend llamacpp",
            )
        if not _has_xllamacpp():
            raise WattlmError(
                "the llamacpp backend needs the xllamacpp package",
                hint='pip install "wattlm[llamacpp]"',
            )
    if "onnxruntime" in names:
        _check_onnxruntime(config, loaded)
    return names


def _has_xllamacpp() -> bool:
    import importlib.util

    return importlib.util.find_spec("xllamacpp") is not None


def _check_onnxruntime(config: BenchConfig, loaded: LoadedModel) -> None:
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        raise WattlmError(
            "the onnxruntime backend needs onnxruntime", hint='pip install "wattlm[onnx]"'
        )
    if config.device != "cpu":
        raise WattlmError(
            "the onnxruntime backend runs on the CPU provider only",
            hint="use --device cpu, or the torch backend on a GPU",
        )
    dtypes = {p.dtype for p in loaded.model.parameters()}
    if dtypes != {torch.float32}:
        raise WattlmError(
            f"the onnxruntime backend runs float32 exports; {loaded.spec!r} has "
            f"{sorted(str(d).removeprefix('torch.') for d in dtypes)} weights",
            hint="bench the float32 model (quantized/cast variants run on torch or llama.cpp)",
        )


def _export_onnx(loaded: LoadedModel, config: BenchConfig, workdir: Path, ui: Steps) -> dict:
    """Export to ``workdir`` for the onnxruntime backend; what was exported, for the result."""
    from wattlm.export.onnx_export import export_onnx

    advance = ui.add(f"ONNX export ({config.onnx_export_method})")
    done = export_onnx(loaded, workdir, method=config.onnx_export_method, precision="fp32")
    advance(total=1)
    info = dataclasses.asdict(done)
    return {**info, "path": str(done.path)}


def _backend_kwargs(name, loaded, config, batch_size, onnx_path=None):
    if name == "torch":
        return {"model": loaded.model, "threads": config.resolved_threads}
    if name == "onnxruntime":
        return {
            "onnx_path_or_folder": onnx_path,
            "threads": config.resolved_threads,
            "batch_size": batch_size,
        }
    return {
        "gguf_path": loaded.gguf_path,
        "threads": config.resolved_threads,
        "batch_size": batch_size,
        "context_tokens": config.prompt_tokens + config.new_tokens + 8,
        "n_gpu_layers": 99 if config.device.startswith("cuda") else 0,
    }


def _measure(name, loaded, config, batch, prompts, meter, isolate, advance, onnx=None):
    """Samples and backend details of one (backend, batch) run.

    llama.cpp and ONNX Runtime run in their own process when ``isolate`` (see
    :mod:`wattlm.bench.isolated`); torch, and any run measured by a caller-supplied meter,
    run in this process.
    """
    kwargs = _backend_kwargs(name, loaded, config, batch, onnx and onnx["path"])
    common = {"new_tokens": config.new_tokens, "warmup": config.warmup, "repeats": config.repeats}
    if isolate and name != "torch":
        samples, details, _ = run_phases_in_child(
            name, kwargs, prompts, meter_kind=config.meter, device=config.device, **common
        )
        advance(config.warmup + config.repeats)
        details = {**details, "process": "isolated"}
    else:
        with backend_class(name)(**kwargs) as backend:
            samples = run_phases(backend, prompts, meter=meter, on_step=advance, **common)
            details = {**backend.describe(), "process": "shared"}
    if name == "onnxruntime":
        details["export"] = onnx
    return samples, details


def _quality(loaded: LoadedModel, config: BenchConfig, ui: Steps) -> dict[str, Any] | None:
    if not config.quality:
        return None
    from wattlm.data.text import load_text

    ids = loaded.tokenizer(load_text(config.data, split="test")).input_ids[: config.ppl_max_tokens]
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
    return {
        **ppl.to_dict(),
        "data": config.data,
        "split": "test",
        "backend": "torch",
        "dtype": dtype,
    }


def bench(
    config: BenchConfig | None = None,
    *,
    model: LoadedModel | None = None,
    meter: EnergyMeter | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Benchmark a model and return the result (also written to ``out_dir`` if given).

    Args:
        config: what to run; defaults to the embedded SmolLM2 on the wiki sample.
        model: an already loaded model (then ``config.model`` only labels it).
        meter: an energy meter; by default the best available for ``config.device``.
        out_dir: folder for ``config.json`` and ``result.json`` (written atomically).
        progress: show progress bars on stderr.

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> cfg = BenchConfig(model="tiny", prompt_tokens=8, new_tokens=4, batch_sizes=(1,),
        ...                   repeats=2, warmup=0, quality=False, data="README.md")
        >>> result = bench(cfg, model=tiny_causal_lm(), progress=False)  # doctest: +SKIP
    """
    from wattlm.data.text import load_text
    from wattlm.measure.carbon import grid_intensity
    from wattlm.measure.context import collect_context
    from wattlm.measure.factory import make_meter
    from wattlm.measure.memory import PeakRssSampler

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
        prompt_ids = model.tokenizer(load_text(config.data, split="validation")).input_ids
        quality = _quality(model, config, ui)
        onnx = None
        if "onnxruntime" in backends:  # a scratch export: the result records what it was
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wattlm-")))
            onnx = _export_onnx(model, config, workdir, ui)
        intensity = grid_intensity(config.grid_intensity_g_per_kwh)
        runs = []
        for name in backends:
            for batch in config.batch_sizes:
                prompts = cut_prompts(
                    prompt_ids, batch_size=batch, prompt_tokens=config.prompt_tokens
                )
                advance = ui.add(f"{name} batch {batch}", total=config.warmup + config.repeats)
                samples, details = _measure(
                    name, model, config, batch, prompts, meter, isolate, advance, onnx
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
    result = {
        "schema_version": 1,
        "kind": "bench",
        "wattlm_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": config.to_dict(),
        "model": model_info,
        "quality": quality,
        "memory": {
            "peak_rss_bytes": rss.peak_rss_bytes,
            "weights_resident_bytes": model_info["weight_bytes"],
        },
        "energy": {
            "source": meter.source,
            "meter": meter.describe(),
            "idle_subtracted": meter.idle_power_w() is not None,
        },
        "carbon": intensity.to_dict(),
        "runs": runs,
        "notes": _notes(model, backends, meter),
        "context": collect_context(threads),
    }
    if out_dir is not None:
        write_run(out_dir, config.to_dict(), result)
    return result


def _run_entry(name, batch, config, threads, meter, samples, details, intensity) -> dict[str, Any]:
    return {
        "backend": name,
        "batch_size": batch,
        "threads": threads,
        "dtype": _run_dtype(name, config, details),
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


def _run_dtype(name: str, config: BenchConfig, details: dict[str, Any]) -> str:
    if name == "torch":
        return config.dtype
    if name == "onnxruntime":
        return "float32"
    return details.get("file_type", "gguf")


def _notes(model: LoadedModel, backends: list[str], meter: EnergyMeter) -> list[str]:
    notes = list(model.notes)
    if "llamacpp" in backends:
        notes.append(
            "llama.cpp runs the GGUF file with its own quantized kernels; perplexity was "
            "measured with torch on the dequantized weights; each llama.cpp run is measured in "
            "its own process (when wattlm chooses the meter), because torch's OpenMP runtime "
            "slows llama.cpp in a shared process"
        )
    if "onnxruntime" in backends:
        notes.append(
            "ONNX Runtime runs a float32 ONNX export of the model (KV cache kept in ONNX "
            "Runtime); the export's logits were checked against torch's (within 1e-4), so the "
            "torch perplexity holds for it; each ONNX Runtime run is measured in its own process"
        )
    if meter.source.startswith("estimate:"):
        notes.append(
            "energy is an estimate (no sensor on this machine): process CPU time × per-core "
            "power model + DRAM; see docs/energy.md"
        )
    return notes


def write_run(out_dir: str | Path, config: dict[str, Any], result: dict[str, Any]) -> Path:
    """Validate ``result`` and write ``config.json`` then ``result.json`` atomically."""
    from wattlm.report.result import validate_result

    validate_result(result)
    out = Path(out_dir)
    write_json(out / "config.json", config)
    write_json(out / "result.json", result)
    return out
