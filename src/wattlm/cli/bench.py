"""``wattlm bench``: quality + size + memory + speed + energy of one model."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer

from wattlm.errors import WattlmError


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise WattlmError(f"{what} must be comma-separated integers, got {text!r}") from None


def _default_out() -> Path:
    return Path("runs") / dt.datetime.now().strftime("bench-%Y%m%d-%H%M%S")


def bench_command(
    model: str = typer.Option("smollm2-135m", help="Asset name, .gguf file, HF folder or hub id."),
    data: str = typer.Option(
        "wiki-sample", help="Text for perplexity and prompts: asset or .txt file."
    ),
    backend: str = typer.Option("auto", help="Comma list of: auto, torch, llamacpp, onnxruntime."),
    batch: str = typer.Option("1,8", help="Comma list of batch sizes."),
    prompt_tokens: int = typer.Option(256, help="Prompt length in tokens."),
    new_tokens: int = typer.Option(64, help="Tokens generated per sequence (exactly)."),
    repeats: int = typer.Option(5, help="Measured repeats per run."),
    warmup: int = typer.Option(1, help="Unmeasured warm-up runs."),
    threads: int = typer.Option(None, help="CPU threads (default: all available cores)."),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16 (torch backend)."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    meter: str = typer.Option("auto", help="Energy meter: auto, nvml, rapl, estimate, null."),
    quality: bool = typer.Option(True, help="Measure perplexity on the test split."),
    ppl_max_length: int = typer.Option(512, help="Perplexity window in tokens."),
    ppl_stride: int = typer.Option(256, help="Perplexity window stride in tokens."),
    ppl_max_tokens: int = typer.Option(8192, help="Evaluation tokens used for perplexity."),
    cv_threshold: float = typer.Option(0.10, help="Flag figures whose CV exceeds this."),
    grid_intensity: float = typer.Option(None, help="Grid carbon intensity in gCO2e/kWh."),
    config: Path = typer.Option(None, help="A BenchConfig JSON file (options are ignored)."),
    out: Path = typer.Option(
        None, help="Run folder for result.json + config.json (default: runs/bench-<time>)."
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
    print_json: bool = typer.Option(False, "--json", help="Print result.json to stdout."),
) -> None:
    """Measure quality, size, memory, prefill/decode speed and joules per token."""
    from wattlm.bench.config import BenchConfig
    from wattlm.bench.runner import bench
    from wattlm.report.table import print_result_table

    if config is not None:
        if not config.is_file():
            raise WattlmError(f"config file not found: {config}")
        cfg = BenchConfig.from_json(config.read_text())
    else:
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
            dtype=dtype,
            device=device,
            meter=meter,
            quality=quality,
            ppl_max_length=ppl_max_length,
            ppl_stride=ppl_stride,
            ppl_max_tokens=ppl_max_tokens,
            cv_threshold=cv_threshold,
            grid_intensity_g_per_kwh=grid_intensity,
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
