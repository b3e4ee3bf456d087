"""``wattlm compress``: apply a recipe, save the model, bench it against the original."""

from __future__ import annotations

from pathlib import Path

import typer

from wattlm.cli.bench import _int_list


def compress_command(
    recipe: Path = typer.Option(..., help="Recipe YAML: ordered compression stages."),
    out: Path = typer.Option(..., help="Run folder (must not exist or be empty)."),
    model: str = typer.Option("smollm2-135m", help="Asset name, .gguf file, HF folder or hub id."),
    data: str = typer.Option("wiki-sample", help="Text for perplexity and prompts."),
    backend: str = typer.Option("torch", help="Comma list of backends to bench (torch)."),
    batch: str = typer.Option("1,8", help="Comma list of batch sizes."),
    prompt_tokens: int = typer.Option(256, help="Prompt length in tokens."),
    new_tokens: int = typer.Option(64, help="Tokens generated per sequence."),
    repeats: int = typer.Option(5, help="Measured repeats per run."),
    warmup: int = typer.Option(1, help="Unmeasured warm-up runs."),
    threads: int = typer.Option(None, help="CPU threads (default: all available cores)."),
    meter: str = typer.Option("auto", help="Energy meter: auto, nvml, rapl, estimate, null."),
    ppl_max_tokens: int = typer.Option(8192, help="Evaluation tokens used for perplexity."),
    run_bench: bool = typer.Option(True, "--bench/--no-bench", help="Bench before and after."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Compress a model by a recipe; report what it bought and what it cost."""
    from rich.console import Console
    from rich.markdown import Markdown

    from wattlm.bench.config import BenchConfig
    from wattlm.compress.compare import render_comparison
    from wattlm.compress.pipeline import compress_model

    cfg = BenchConfig(
        model=model,
        data=data,
        backends=tuple(b.strip() for b in backend.split(",") if b.strip()),
        batch_sizes=_int_list(batch, "--batch"),
        prompt_tokens=prompt_tokens,
        new_tokens=new_tokens,
        repeats=repeats,
        warmup=warmup,
        threads=threads,
        meter=meter,
        ppl_max_tokens=ppl_max_tokens,
    )
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
