"""``wattlm optimize``: energy/quality Pareto search under a quality budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from wattlm.cli import options as opt
from wattlm.report.records import OptimizeRecord


def optimize_command(
    ctx: typer.Context,
    model: opt.Model = "smollm2-135m",
    data: opt.Data = "wiki-sample",
    budget: Annotated[
        str, typer.Option(help="Largest perplexity increase allowed: 2% or 0.02.")
    ] = "2%",
    kl_budget: Annotated[
        float | None,
        typer.Option(
            help="Also bound the mean KL divergence from the baseline's next-token "
            "distribution, in nats per token (e.g. 0.01); default: perplexity only."
        ),
    ] = None,
    objective: Annotated[
        str, typer.Option(help="decode-energy, prefill-energy or request-energy.")
    ] = "decode-energy",
    energy_view: Annotated[
        str,
        typer.Option(
            help="Energy the objective reads: total (idle-inclusive: a dedicated or rented "
            "machine) or marginal (added over idle: a shared, always-on one)."
        ),
    ] = "total",
    sampler: Annotated[str, typer.Option(help="nsga2, tpe, grid or random.")] = "nsga2",
    n_trials: Annotated[
        int,
        typer.Option(
            help="Most distinct configurations to try (a configuration proposed again is answered "
            "from its record and not counted; the baseline not counted)."
        ),
    ] = 60,
    time_budget: Annotated[
        str, typer.Option(help="Wall-clock budget of the whole run (15m, 90s, 1h30m, none).")
    ] = "14m",
    space: Annotated[
        str,
        typer.Option(
            help="Search space: default, quick, full or a YAML file (shipped ones: src/wattlm/search/spaces/)."
        ),
    ] = "default",
    storage: opt.Storage = None,
    ray: opt.Ray = None,
    ray_workers: Annotated[
        int | None, typer.Option(help="Concurrent Ray trials (default: CPUs / threads).")
    ] = None,
    out: opt.Out = Path("runs/optimize"),
    threads: opt.Threads = None,
    seed: opt.Seed = 0,
    meter: opt.Meter = "auto",
    device: opt.Device = "cpu",
    remeasure: Annotated[
        int,
        typer.Option(
            help="Feasible candidates measured again at the full stage (0: decide on screens)."
        ),
    ] = 3,
    peer: Annotated[
        bool, typer.Option(help="Also measure llama.cpp on the model's own GGUF file.")
    ] = True,
    repeats: opt.Repeats = 5,
    screen_repeats: Annotated[
        int,
        typer.Option(
            help="Most measured repeats at the screen stage (it stops once decode energy per "
            "token is known within 10%, after 2)."
        ),
    ] = 4,
    prune_factor: Annotated[
        float,
        typer.Option(
            help="Screen: stop measuring a trial once its decode energy per token is above this "
            "many times the best feasible one so far (0: never)."
        ),
    ] = 1.5,
    quality_margin: Annotated[
        str,
        typer.Option(
            help="Screen: a perplexity increase above the budget plus this margin ends a trial "
            "before its energy is measured (none: always measure energy)."
        ),
    ] = "1%",
    serving_tokens: Annotated[
        int,
        typer.Option(
            help="Tokens the model will serve: a trial's healing energy (stages with heal) is "
            "spread over them when trials are compared."
        ),
    ] = 10_000_000,
    ppl_tokens: Annotated[int, typer.Option(help="Perplexity tokens at the full stage.")] = 4096,
    screen_ppl_tokens: Annotated[
        int, typer.Option(help="Perplexity tokens at the screen stage.")
    ] = 1024,
    config: opt.Config = None,
    progress: opt.Progress = True,
    print_json: opt.PrintJson = False,
) -> None:
    """Search compression methods, backends, batch sizes and threads for the lowest energy
    per token within a quality budget; save and re-bench the recommended model.

    Re-running into the same --out resumes the search. --threads sets the baseline's and
    the peer's threads; the space sets the trials'.
    """
    from wattlm.search.run import optimize

    flags = dict(
        model=model, data=data, budget=budget, kl_budget=kl_budget, objective=objective,
        energy_view=energy_view,
        sampler=sampler,
        n_trials=n_trials, time_budget=time_budget, space=space, storage=storage, ray=ray,
        ray_workers=ray_workers, threads=threads, seed=seed, meter=meter, device=device,
        remeasure=remeasure, peer=peer, repeats=repeats, screen_repeats=screen_repeats,
        ppl_tokens=ppl_tokens, screen_ppl_tokens=screen_ppl_tokens, prune_factor=prune_factor,
        quality_margin=quality_margin, serving_tokens=serving_tokens,
    )  # fmt: skip
    cfg = opt.from_flags(ctx, config, flags, _optimize_fields, _optimize_config)
    record = optimize(cfg, out_dir=out, progress=progress, lines_to_stdout=not print_json)
    if print_json:
        typer.echo(json.dumps(record, indent=2))
        return
    print_summary(record, out)


#: flag -> (stage settings, field) for the flags that set one stage's measurement
_STAGE_FLAGS = {
    "repeats": ("full", "repeats"),
    "ppl_tokens": ("full", "ppl_max_tokens"),
    "screen_repeats": ("screen", "repeats"),
    "screen_ppl_tokens": ("screen", "ppl_max_tokens"),
}


def _optimize_fields(flags: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    import dataclasses

    from wattlm.search.config import FULL, SCREEN

    out: dict[str, Any] = {}
    defaults = {"screen": dataclasses.asdict(SCREEN), "full": dataclasses.asdict(FULL)}
    for name, value in flags.items():
        if name in _STAGE_FLAGS:
            stage, key = _STAGE_FLAGS[name]
            if stage not in out:
                out[stage] = dict(base.get(stage) or defaults[stage])
            out[stage][key] = value
        elif name == "prune_factor":
            out[name] = value or None  # 0: never
        elif name == "quality_margin":
            out[name] = None if str(value).strip().lower() in ("none", "off") else value
        else:
            out["time_budget_s" if name == "time_budget" else name] = value
    return out


def _optimize_config(data: dict[str, Any]):
    from wattlm.search.config import OptimizeConfig

    return OptimizeConfig.from_dict(data)


def _fmt(stat: dict[str, Any] | None, digits: int = 4) -> str:
    if not stat:
        return "—"
    text = f"{stat['median']:.{digits}g}"
    if stat.get("ci95"):
        lo, hi = stat["ci95"]
        text += f" [{lo:.{digits}g}, {hi:.{digits}g}]"
    return text


def peer_ratio_names(record: OptimizeRecord) -> list[tuple[str, str]]:
    """(what the recommendation is compared with, ratio key), the headline first.

    Example:
        >>> rec = {"trials": [{"number": 3, "batch_size": 8}], "recommended": 3}
        >>> [name for name, _ in peer_ratio_names(rec)][1]
        'llama.cpp default at the same batch size (8)'
    """
    batch = next(
        (t["batch_size"] for t in record["trials"] if t["number"] == record["recommended"]), 1
    )
    names = [
        ("the fp32 baseline", "tokens_per_joule_vs_baseline"),
        (
            f"llama.cpp default at the same batch size ({batch})",
            "tokens_per_joule_vs_peer_same_batch",
        ),
    ]
    if batch != 1:
        names.append(
            (
                "llama.cpp default at batch 1 (batching plus configuration)",
                "tokens_per_joule_vs_peer",
            )
        )
    return names


def print_summary(record: OptimizeRecord, out: Path) -> None:
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
    for name, key in peer_ratio_names(record):
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
