"""``wattlm bench``: quality + size + memory + speed + energy of one model."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from wattlm.cli import options as opt


def _default_out() -> Path:
    return Path("runs") / dt.datetime.now().strftime("bench-%Y%m%d-%H%M%S")


def bench_command(
    ctx: typer.Context,
    model: opt.Model = "smollm2-135m",
    data: opt.Data = "wiki-sample",
    backend: opt.Backend = "auto",
    onnx_weights: opt.OnnxWeights = "fp32",
    openvino_weights: opt.OpenVinoWeights = "fp32",
    runtime: opt.Runtime = "",
    batch: opt.Batch = "1,8",
    prompt_tokens: opt.PromptTokens = 256,
    new_tokens: opt.NewTokens = 64,
    repeats: opt.Repeats = 5,
    warmup: opt.Warmup = 1,
    threads: opt.Threads = None,
    dtype: opt.Dtype = "float32",
    device: opt.Device = "cpu",
    meter: opt.Meter = "auto",
    quality: Annotated[bool, typer.Option(help="Measure perplexity on the test split.")] = True,
    ppl_max_length: Annotated[int, typer.Option(help="Perplexity window in tokens.")] = 512,
    ppl_stride: Annotated[int, typer.Option(help="Perplexity window stride in tokens.")] = 256,
    ppl_max_tokens: opt.PplMaxTokens = 8192,
    cv_threshold: Annotated[float, typer.Option(help="Flag figures whose CV exceeds this.")] = 0.10,
    grid_intensity: opt.GridIntensity = None,
    config: opt.Config = None,
    out: opt.shown(opt.Out, "runs/bench-<time>") = None,
    progress: opt.Progress = True,
    print_json: opt.PrintJson = False,
) -> None:
    """Measure quality, size, memory, prefill/decode speed and joules per token.

    Writes result.json and config.json to --out.
    """
    from wattlm.bench.runner import bench
    from wattlm.report.table import print_result_table

    cfg = opt.bench_config(
        ctx,
        config=config,
        model=model,
        data=data,
        backend=backend,
        onnx_weights=onnx_weights,
        openvino_weights=openvino_weights,
        runtime=runtime,
        batch=batch,
        prompt_tokens=prompt_tokens,
        new_tokens=new_tokens,
        repeats=repeats,
        warmup=warmup,
        threads=threads,
        dtype=dtype,
        device=device,
        meter=meter,
        quality=quality,
        ppl_max_length=ppl_max_length,
        ppl_stride=ppl_stride,
        ppl_max_tokens=ppl_max_tokens,
        cv_threshold=cv_threshold,
        grid_intensity=grid_intensity,
    )
    out_dir = out or _default_out()
    result = bench(cfg, out_dir=out_dir, progress=progress)
    if print_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_result_table(result)
        typer.echo(f"wrote {out_dir / 'result.json'} and {out_dir / 'config.json'}")


def register(app: typer.Typer) -> None:
    """Attach the ``bench`` command to ``app``."""
    app.command("bench")(bench_command)
