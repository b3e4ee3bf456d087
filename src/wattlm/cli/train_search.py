"""``wattlm train search``: search training options for the least energy to a target quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from wattlm.cli import options as opt


def search_command(
    target: Annotated[
        float,
        typer.Option(help="Quality to reach: accuracy (classifiers) or perplexity (causal LMs)."),
    ],
    model: opt.Model = "minilm-l6",
    data: opt.Data = "movie-sentiment",
    n_trials: Annotated[
        int, typer.Option(help="Trials to ask (the default configuration not counted).")
    ] = 20,
    space: Annotated[
        str, typer.Option(help="Search space: train-default, train-quick or a YAML file.")
    ] = "train-default",
    sampler: Annotated[str, typer.Option(help="tpe, random, grid or nsga2.")] = "tpe",
    recipe: Annotated[
        str, typer.Option(help="Recipe searched: finetune, or distill (--model is the teacher).")
    ] = "finetune",
    student: Annotated[
        str, typer.Option(help="distill: the student (layers:N, every:K, ...).")
    ] = "layers:3",
    temperature: Annotated[float, typer.Option(help="distill: softmax temperature.")] = 2.0,
    alpha: Annotated[float, typer.Option(help="distill: weight of the soft targets.")] = 0.5,
    max_samples: Annotated[
        int, typer.Option(help="A trial's budget in training samples (infeasible past it).")
    ] = 4096,
    max_trial_time: Annotated[
        float | None,
        typer.Option(help="A trial's training time cap in seconds (infeasible past it)."),
    ] = None,
    eval_every: Annotated[
        int, typer.Option(help="Evaluate (and check the target) every N training samples.")
    ] = 512,
    eval_max_samples: Annotated[
        int, typer.Option(help="Held-out examples per evaluation (classifiers).")
    ] = 500,
    seq_len: opt.SeqLen = 128,
    max_train_samples: opt.MaxTrainSamples = None,
    energy_prune: Annotated[
        bool,
        typer.Option(help="Prune trials projected to cost more than the best one to target."),
    ] = True,
    pruner: Annotated[
        str, typer.Option(help="Optuna pruner too: none, median, successive-halving, hyperband.")
    ] = "none",
    storage: opt.Storage = None,
    ray: opt.Ray = None,
    ray_workers: Annotated[int | None, typer.Option(help="Concurrent Ray trials.")] = None,
    out: opt.Out = Path("runs/train-search"),
    threads: opt.Threads = None,
    seed: opt.Seed = 0,
    meter: opt.Meter = "auto",
    device: opt.Device = "cpu",
    progress: opt.Progress = True,
    print_json: opt.PrintJson = False,
) -> None:
    """Search optimiser, learning rate, warm-up, batch size, accumulation, precision, gradient
    checkpointing, which layers train and batching for the least energy to --target.

    Each trial stops as soon as its evaluation reaches the target; the default configuration
    is measured in the same run. Re-running into the same --out resumes the search.
    """
    from wattlm.report.train_search_report import summary_lines
    from wattlm.search.train_config import TrainSearchConfig
    from wattlm.search.train_search_run import train_search

    cfg = TrainSearchConfig(
        target=target, model=model, data=data, recipe=recipe, n_trials=n_trials, space=space,
        sampler=sampler, seed=seed, max_samples=max_samples, eval_every_samples=eval_every,
        max_trial_s=max_trial_time,
        eval_max_samples=eval_max_samples, seq_len=seq_len, max_train_samples=max_train_samples,
        energy_prune=energy_prune, pruner=pruner, threads=threads, device=device, meter=meter,
        storage=storage, ray=ray, ray_workers=ray_workers, student=student,
        temperature=temperature, alpha=alpha,
    )  # fmt: skip
    parts = None
    if recipe == "distill":
        from wattlm.train.search_parts import distill_parts

        parts = distill_parts
    record = train_search(cfg, out_dir=out, progress=progress, parts=parts)
    if print_json:
        typer.echo(json.dumps(record, indent=2))
        return
    for line in summary_lines(record):
        typer.echo(line)
    typer.echo(f"wrote {out / 'train-search.json'}, {out / 'report.html'}, {out / 'report.md'}")


def register(app: typer.Typer) -> None:
    """Attach ``search`` to the ``train`` command group."""
    app.command("search")(search_command)
