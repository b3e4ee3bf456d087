"""``wattlm optimize``: energy/quality Pareto search under a quality budget."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from wattlm.errors import WattlmError


def optimize_command(
    model: str = typer.Option("smollm2-135m", help="Asset name, .gguf file, HF folder or hub id."),
    data: str = typer.Option("wiki-sample", help="Text for perplexity, prompts and calibration."),
    budget: str = typer.Option("2%", help="Largest perplexity increase allowed: 2% or 0.02."),
    objective: str = typer.Option(
        "decode-energy", help="decode-energy, prefill-energy or request-energy."
    ),
    sampler: str = typer.Option("nsga2", help="nsga2, tpe, grid or random."),
    n_trials: int = typer.Option(60, help="Most trials to ask (the baseline not counted)."),
    time_budget: str = typer.Option(
        "14m", help="Wall-clock budget of the whole run (15m, 90s, 1h30m, none)."
    ),
    space: str = typer.Option(
        "default", help="Search space: default, quick, full or a YAML file (see search-spaces/)."
    ),
    storage: str = typer.Option(
        None, help="Optuna storage URL (resumable) (default: sqlite:///OUT/study.db)."
    ),
    ray: str = typer.Option(None, help="Run trials as Ray tasks: auto, an address, or local."),
    ray_workers: int = typer.Option(None, help="Concurrent Ray trials (default: CPUs / threads)."),
    out: Path = typer.Option(
        Path("runs/optimize"), help="Run folder; re-running into it resumes the search."
    ),
    threads: int = typer.Option(
        None, help="Threads of the baseline and peer (default: all cores)."
    ),
    seed: int = typer.Option(0, help="Sampler seed."),
    meter: str = typer.Option("auto", help="Energy meter: auto, nvml, rapl, estimate."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    remeasure: int = typer.Option(
        2, help="Feasible candidates measured again at the full stage (0: decide on screens)."
    ),
    peer: bool = typer.Option(True, help="Also measure llama.cpp on the model's own GGUF file."),
    repeats: int = typer.Option(5, help="Measured repeats at the full stage."),
    screen_repeats: int = typer.Option(2, help="Measured repeats at the screen stage."),
    ppl_tokens: int = typer.Option(8192, help="Perplexity tokens at the full stage."),
    screen_ppl_tokens: int = typer.Option(2048, help="Perplexity tokens at the screen stage."),
    config: Path = typer.Option(None, help="An OptimizeConfig JSON file (options are ignored)."),
    progress: bool = typer.Option(True, help="Show the live view."),
    print_json: bool = typer.Option(False, "--json", help="Print optimize.json to stdout."),
) -> None:
    """Search compression methods, backends, batch sizes and threads for the lowest energy
    per token within a quality budget; save and re-bench the recommended model."""
    from wattlm.search.config import FULL, SCREEN, OptimizeConfig
    from wattlm.search.run import optimize

    if config is not None:
        if not config.is_file():
            raise WattlmError(f"config file not found: {config}")
        cfg = OptimizeConfig.from_json(config.read_text(encoding="utf-8"))
    else:
        cfg = OptimizeConfig(
            model=model,
            data=data,
            budget=budget,
            objective=objective,
            sampler=sampler,
            n_trials=n_trials,
            time_budget_s=time_budget,
            space=space,
            storage=storage,
            ray=ray,
            ray_workers=ray_workers,
            threads=threads,
            seed=seed,
            meter=meter,
            device=device,
            remeasure=remeasure,
            peer=peer,
            screen=dataclasses.replace(
                SCREEN, repeats=screen_repeats, ppl_max_tokens=screen_ppl_tokens
            ),
            full=dataclasses.replace(FULL, repeats=repeats, ppl_max_tokens=ppl_tokens),
        )
    record = optimize(cfg, out_dir=out, progress=progress)
    if print_json:
        typer.echo(json.dumps(record, indent=2))
        return
    print_summary(record, out)


def _fmt(stat: dict[str, Any] | None, digits: int = 4) -> str:
    if not stat:
        return "—"
    text = f"{stat['median']:.{digits}g}"
    if stat.get("ci95"):
        lo, hi = stat["ci95"]
        text += f" [{lo:.{digits}g}, {hi:.{digits}g}]"
    return text


def print_summary(record: dict[str, Any], out: Path) -> None:
    """The front, the recommendation and the ratios, as a table on stdout."""
    from rich.console import Console
    from rich.table import Table

    unit = record["objective"]["unit"]
    table = Table(title=f"Pareto front ({record['objective']['name']}, {unit}) within the budget")
    for col in (
        "#",
        "configuration",
        f"energy ({unit})",
        "perplexity",
        "latency (ms/token)",
        "weights",
    ):
        table.add_column(col)
    by_number = {t["number"]: t for t in record["trials"]}
    for number in record["pareto"]:
        t = by_number[number]
        m = t["metrics"]
        mark = " ★" if number == record["recommended"] else ""
        inc = m.get("perplexity_increase")
        ppl = f"{m['perplexity']:.3f} ({inc:+.2%})" if m.get("perplexity") else "—"
        size = f"{m['weight_bytes'] / 1e6:.1f} MB" if m.get("weight_bytes") else "—"
        table.add_row(
            f"{number}{mark}", t["label"], _fmt(m.get("objective")), ppl,
            _fmt(m.get("latency_ms_per_token"), 3), size,
        )  # fmt: skip
    console = Console()
    console.print(table)
    ratios = record["ratios"]
    for name, key in (
        ("the fp32 baseline", "tokens_per_joule_vs_baseline"),
        ("llama.cpp default", "tokens_per_joule_vs_peer"),
    ):
        if ratios.get(key):
            console.print(f"recommended: {ratios[key]:.2f}× the work per joule of {name}")
    if record["ties"]:
        console.print(f"ties (95% intervals overlap): {record['ties']}")
    rec = record.get("recommended_model")
    if rec:
        console.print(f"recommended model: {out / rec['path']}  (reproduce: {rec['command']})")
    typer.echo(f"wrote {out / 'optimize.json'}")


def register(app: typer.Typer) -> None:
    """Attach the ``optimize`` command to ``app``."""
    app.command("optimize")(optimize_command)
