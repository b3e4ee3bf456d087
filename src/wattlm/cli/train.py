"""``wattlm train finetune|distill|qat``: train, measuring what the training costs.

Every subcommand takes the same training, data and run options (declared once in
:mod:`wattlm.cli.options`, so they cannot drift apart); an option left out keeps the value
of ``--config FILE`` (a run's ``config.json``) or the recipe's default. Under
``torchrun --nproc-per-node N -m wattlm train ...`` the run is data parallel.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from wattlm.cli import options as opt
from wattlm.cli.options import shown
from wattlm.errors import WattlmError

app = typer.Typer(
    help="Fine-tune, distil or quantization-aware train a model; energy measured per step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: the shared options by where they go in the recipe config (None: not given)
_DATA = ("data", "seq_len", "max_train_samples", "eval_split", "eval_max_samples",
         "eval_max_tokens", "eval_max_length")  # fmt: skip
_OPTIONS = ("lr", "epochs", "max_steps", "max_time_s", "batch_size", "grad_accum", "optimizer",
            "weight_decay", "momentum", "schedule", "warmup_steps", "max_grad_norm",
            "precision", "gradient_checkpointing", "compile", "train_layers", "lora_rank",
            "length_batching", "seed", "checkpoint_every",
            "keep_checkpoints", "log_every", "device", "threads", "meter",
            "grid_intensity_g_per_kwh")  # fmt: skip
_RUN = ("config", "out", "resume", "progress")


def _common(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A command's shared options as ``{"data": {...}, "options": {...}, "run": {...}}``
    (only the data and training options given)."""
    values = {**values, "max_time_s": values.get("max_time"),
              "grid_intensity_g_per_kwh": values.get("grid_intensity")}  # fmt: skip
    return {
        "data": {k: values[k] for k in _DATA if values[k] is not None},
        "options": {k: values[k] for k in _OPTIONS if values[k] is not None},
        "run": {k: values[k] for k in _RUN},
    }


def _build(recipe: str, own: dict[str, Any], common: dict[str, dict[str, Any]]):
    """The recipe config: ``--config`` file (if any), then the flags given."""
    from wattlm.train.config import config_from_dict

    base: dict[str, Any] = {"recipe": recipe}
    file = common["run"]["config"]
    if file is not None:
        base = opt.read_config(file)
        if base.get("recipe") != recipe:
            raise WattlmError(f"{file} is a {base.get('recipe')!r} config, not {recipe!r}")
    for group in ("data", "options"):
        merged = {**base.get(group, {}), **common[group]}
        if group == "options" and merged.get("max_grad_norm") == 0:
            merged["max_grad_norm"] = None
        if group == "options" and "max_steps" in common[group] and "epochs" not in merged:
            merged["epochs"] = None  # --max-steps alone is not capped at one epoch
        base[group] = merged
    base.update({k: v for k, v in own.items() if v is not None})
    return config_from_dict(base)


def _run(recipe: str, config, common: dict[str, dict[str, Any]]) -> None:
    import importlib

    modules = {"finetune": "finetuning", "distill": "distillation", "qat": "qat_training"}
    fn = getattr(importlib.import_module(f"wattlm.train.{modules[recipe]}"), recipe)
    run = common["run"]
    opt.warn_if_emulated(config.options.precision, config.options.device)
    result = fn(config, run["out"], resume=run["resume"], progress=run["progress"])
    if result is not None:
        typer.echo(_summary(result, run["out"]))


def _fmt_quality(q: dict[str, Any] | None) -> str:
    if not q:
        return "-"
    return f"{q['value']:.4f}" if q["metric"] == "accuracy" else f"{q['value']:.2f}"


def _summary(result: dict[str, Any], out: Path) -> str:
    q, t = result["quality"], result["training"]
    metric = q["after"]["metric"]
    parts = [f"{metric} before {_fmt_quality(q['before'])} → after {_fmt_quality(q['after'])}"]
    if q.get("teacher"):
        parts.append(f"teacher {_fmt_quality(q['teacher'])}")
    if q.get("ptq"):
        parts.append(f"without QAT {_fmt_quality(q['ptq'])}")
    energy = (
        "unavailable"
        if t["energy_j"] is None
        else f"{t['energy_j']:.1f} J ({t['g_co2e']:.4f} gCO2e)"
    )
    return (
        f"{'; '.join(parts)}\n"
        f"{t['steps']} steps, {t['samples']} samples in {t['time_s']:.1f} s; "
        f"energy {energy}, source {t['energy_source']}\n"
        f"wrote {out / 'model'}, {out / 'result.json'}, {out / 'config.json'}, {out / 'log.jsonl'}"
    )


def _recipe_options(
    *,
    data: opt.Data = None,
    seq_len: shown(opt.SeqLen, "128") = None,
    max_train_samples: opt.MaxTrainSamples = None,
    eval_split: shown(opt.EvalSplit, "test") = None,
    eval_max_samples: shown(opt.EvalMaxSamples, "all") = None,
    eval_max_tokens: shown(opt.EvalMaxTokens, "4096") = None,
    eval_max_length: shown(opt.EvalMaxLength, "512") = None,
    lr: shown(opt.Lr, "5e-5") = None,
    epochs: shown(opt.Epochs, "1") = None,
    max_steps: opt.MaxSteps = None,
    max_time: opt.MaxTime = None,
    batch_size: shown(opt.BatchSize, "16") = None,
    grad_accum: shown(opt.GradAccum, "1") = None,
    optimizer: shown(opt.Optimizer, "adamw") = None,
    weight_decay: shown(opt.WeightDecay, "0.01") = None,
    momentum: shown(opt.Momentum, "0.9") = None,
    schedule: shown(opt.Schedule, "linear") = None,
    warmup_steps: shown(opt.WarmupSteps, "0") = None,
    max_grad_norm: shown(opt.MaxGradNorm, "1.0") = None,
    precision: shown(opt.Precision, "fp32") = None,
    gradient_checkpointing: shown(opt.GradientCheckpointing, "no") = None,
    compile: shown(opt.Compile, "no") = None,
    train_layers: shown(opt.TrainLayers, "all") = None,
    lora_rank: shown(opt.LoraRank, "8") = None,
    length_batching: shown(opt.LengthBatching, "longest") = None,
    seed: shown(opt.Seed, "0") = None,
    checkpoint_every: shown(opt.CheckpointEvery, "0") = None,
    keep_checkpoints: shown(opt.KeepCheckpoints, "no") = None,
    log_every: shown(opt.LogEvery, "10") = None,
    device: shown(opt.Device, "cpu") = None,
    threads: opt.Threads = None,
    meter: shown(opt.Meter, "auto") = None,
    grid_intensity: opt.GridIntensity = None,
    config: opt.Config = None,
    resume: opt.Resume = False,
    progress: opt.Progress = True,
) -> None:
    """The data, training and run options every recipe takes after its own, declared once:
    :func:`_takes_recipe_options` puts them into each command's signature."""


def _takes_recipe_options(command):
    """``command(*, out, <its own options>, **shared)`` with :func:`_recipe_options` spliced
    in place of ``**shared`` (``--help`` lists them after the command's own; typer passes
    them in ``shared``)."""
    own = inspect.signature(command, eval_str=True).parameters.values()
    recipe = inspect.signature(_recipe_options, eval_str=True).parameters.values()
    params = [p for p in own if p.kind is not p.VAR_KEYWORD] + list(recipe)
    command.__signature__ = inspect.Signature(params, return_annotation=None)
    return command


@app.command("finetune")
@_takes_recipe_options
def finetune_command(
    *,
    out: opt.Out,
    model: shown(opt.Model, "minilm-l6") = None,
    task: shown(opt.Task, "auto") = None,
    keep_sparsity: Annotated[
        bool | None,
        typer.Option(
            "--keep-sparsity/--no-keep-sparsity",
            help="Hold zero weights at zero (heal a pruned model).",
        ),
    ] = None,
    **shared: Any,
) -> None:
    """Fine-tune a model: a classifier on labelled sentences, a causal LM on text."""
    common = _common({"out": out, **shared})
    own = {"model": model, "task": task, "keep_sparsity": keep_sparsity}
    _run("finetune", _build("finetune", own, common), common)


def _student_spec(student: str | None, layers: str | None) -> str | None:
    if layers is not None and student is not None:
        raise WattlmError("give --student or --student-layers, not both")
    if layers is not None:
        return f"layers:{layers}"
    return student


@app.command("distill")
@_takes_recipe_options
def distill_command(
    *,
    out: opt.Out,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="Teacher: model folder or asset (a trained classifier for classification)."
        ),
    ] = None,
    student: Annotated[
        str | None,
        typer.Option(
            help="layers:N, layers:i,j,k, every:K, drop-layers:R, config:FILE.json or a model."
        ),
    ] = None,
    student_layers: Annotated[
        str | None,
        typer.Option(help="Keep N layers (evenly spaced) or a list i,j,k of the teacher's."),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="Softmax temperature of the soft targets.", show_default="2.0"),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            help="Weight of the soft-target loss; 1 - alpha goes to the labels.",
            show_default="0.5",
        ),
    ] = None,
    hidden_weight: Annotated[
        float | None,
        typer.Option(help="Weight of the hidden-state MSE loss (0: off).", show_default="0"),
    ] = None,
    task: shown(opt.Task, "auto") = None,
    **shared: Any,
) -> None:
    """Distil a teacher into a smaller student built from its layers (default student:
    layers:3)."""
    common = _common({"out": out, **shared})
    own = {
        "teacher": teacher,
        "student": _student_spec(student, student_layers),
        "temperature": temperature,
        "alpha": alpha,
        "hidden_weight": hidden_weight,
        "task": task,
    }
    _run("distill", _build("distill", own, common), common)


@app.command("qat")
@_takes_recipe_options
def qat_command(
    *,
    out: opt.Out,
    model: opt.Model = None,
    scheme: Annotated[
        str | None,
        typer.Option(
            help="int8 weights, or int8-dynamic: weights + activations.", show_default="int8"
        ),
    ] = None,
    qat_backend: Annotated[
        str | None,
        typer.Option(help="Fake quantization: auto, torchao or wattlm.", show_default="auto"),
    ] = None,
    skip: Annotated[
        str | None,
        typer.Option(
            help="Comma list of Linear names (globs) left in float.",
            show_default="lm_head,classifier,score",
        ),
    ] = None,
    task: shown(opt.Task, "auto") = None,
    **shared: Any,
) -> None:
    """Quantization-aware training of a float model, then conversion to a real int8 model."""
    common = _common({"out": out, **shared})
    own = {
        "model": model,
        "scheme": scheme,
        "backend": qat_backend,
        "skip": None if skip is None else list(opt.names(skip)),
        "task": task,
    }
    _run("qat", _build("qat", own, common), common)


def register(root: typer.Typer) -> None:
    """Attach ``train`` and its subcommands (``search`` included) to ``root``."""
    from wattlm.cli import train_search

    train_search.register(app)
    root.add_typer(app, name="train")
