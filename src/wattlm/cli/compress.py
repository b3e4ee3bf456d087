"""``wattlm compress``: apply a recipe, save the model, bench it against the original."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wattlm.cli import options as opt


def compress_command(
    ctx: typer.Context,
    recipe: Annotated[Path, typer.Option(help="Recipe YAML: ordered compression stages.")],
    out: opt.Out,
    model: opt.Model = "smollm2-135m",
    data: opt.Data = "wiki-sample",
    backend: opt.Backend = "torch",
    batch: opt.Batch = "1,8",
    prompt_tokens: opt.PromptTokens = 256,
    new_tokens: opt.NewTokens = 64,
    repeats: opt.Repeats = 5,
    warmup: opt.Warmup = 1,
    threads: opt.Threads = None,
    dtype: opt.Dtype = "float32",
    device: opt.Device = "cpu",
    meter: opt.Meter = "auto",
    ppl_max_tokens: opt.PplMaxTokens = 8192,
    run_bench: Annotated[
        bool, typer.Option("--bench/--no-bench", help="Bench before and after.")
    ] = True,
    progress: opt.Progress = True,
) -> None:
    """Compress a model by a recipe; report what it bought and what it cost.

    --out must not exist or be empty; it receives model/ and comparison.json.
    """
    from rich.console import Console
    from rich.markdown import Markdown

    from wattlm.compress.compare import render_comparison
    from wattlm.compress.pipeline import compress_model
    from wattlm.compress.recipe import load_recipe

    cfg = opt.bench_config(
        ctx,
        model=model,
        data=data,
        backend=backend,
        batch=batch,
        prompt_tokens=prompt_tokens,
        new_tokens=new_tokens,
        repeats=repeats,
        warmup=warmup,
        threads=threads,
        dtype=dtype,
        device=device,
        meter=meter,
        ppl_max_tokens=ppl_max_tokens,
    )
    for stage in load_recipe(recipe).stages:  # validated again by compress_model
        if stage.method == "cast":
            opt.warn_if_emulated(stage.dtype, cfg.device)
    console = Console(stderr=True)

    def on_stage(i: int, stage) -> None:
        console.print(f"stage {i + 1}: {stage.method}", highlight=False)

    comparison = compress_model(
        model,
        recipe,
        out,
        bench_config=cfg,
        run_bench=run_bench,
        progress=progress,
        on_stage=on_stage,
    )
    if run_bench:
        Console().print(Markdown(render_comparison(comparison)))
    typer.echo(f"wrote {out / 'model'} and {out / 'comparison.json'}")


def register(app: typer.Typer) -> None:
    """Attach the ``compress`` command to ``app``."""
    app.command("compress")(compress_command)
