"""``wattlm train finetune|distill|qat``: train, measuring what the training costs.

Every subcommand takes the same training, data and run options (added to each command by
:func:`_with_common`, so they cannot drift apart); an option left out keeps the value of
``--config FILE`` (a run's ``config.json``) or the recipe's default. Under
``torchrun --nproc-per-node N -m wattlm train ...`` the run is data parallel.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

import typer

from wattlm.errors import WattlmError

app = typer.Typer(
    help="Fine-tune, distil or quantization-aware train a model; energy measured per step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: (name, where it goes, annotation, typer option); None defaults mean "not given"
_COMMON: list[tuple[str, str, type, Any]] = [
    ("data", "data", str, typer.Option(None, help="Labelled set (movie-sentiment, .jsonl, .tsv) or text (wiki-sample, .txt).")),
    ("seq_len", "data", int, typer.Option(None, help="Tokens per sequence: sentence cut or text chunk (default 128).")),
    ("max_train_samples", "data", int, typer.Option(None, help="Use only N training samples, spread over the split.")),
    ("eval_split", "data", str, typer.Option(None, help="Held-out split for quality: validation or test (default test).")),
    ("eval_max_samples", "data", int, typer.Option(None, help="Classifiers: examples evaluated (default all).")),
    ("eval_max_tokens", "data", int, typer.Option(None, help="Causal LMs: tokens scored for perplexity (default 4096).")),
    ("eval_max_length", "data", int, typer.Option(None, help="Causal LMs: perplexity window (default 512).")),
    ("lr", "options", float, typer.Option(None, help="Peak learning rate (default 5e-5).")),
    ("epochs", "options", int, typer.Option(None, help="Passes over the training data (default 1).")),
    ("max_steps", "options", int, typer.Option(None, help="Optimizer steps (the smaller bound wins).")),
    ("max_time_s", "options", float, typer.Option(None, "--max-time", help="Stop after this many seconds of training.")),
    ("batch_size", "options", int, typer.Option(None, help="Samples per micro-batch and process (default 16).")),
    ("grad_accum", "options", int, typer.Option(None, help="Micro-batches per optimizer step (default 1).")),
    ("optimizer", "options", str, typer.Option(None, help="adamw, sgd, adafactor or adamw8bit on CUDA (default adamw).")),
    ("weight_decay", "options", float, typer.Option(None, help="Decoupled weight decay (default 0.01).")),
    ("momentum", "options", float, typer.Option(None, help="SGD momentum (default 0.9).")),
    ("schedule", "options", str, typer.Option(None, help="After warm-up: constant, linear or cosine (default linear).")),
    ("warmup_steps", "options", int, typer.Option(None, help="Linear warm-up steps (default 0).")),
    ("max_grad_norm", "options", float, typer.Option(None, help="Clip the gradient norm; 0 turns clipping off (default 1.0).")),
    ("precision", "options", str, typer.Option(None, help="fp32, bf16 autocast, or fp16 autocast with a scaler on CUDA (default fp32).")),
    ("gradient_checkpointing", "options", bool, typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations in backward (less memory).")),
    ("compile", "options", bool, typer.Option(None, "--compile/--no-compile", help="torch.compile the trained model.")),
    ("seed", "options", int, typer.Option(None, help="Seed for new weights, data order, dropout (default 0).")),
    ("checkpoint_every", "options", int, typer.Option(None, help="Save a resumable checkpoint every N steps (default 0: never).")),
    ("keep_checkpoints", "options", bool, typer.Option(None, "--keep-checkpoints/--no-keep-checkpoints", help="Keep the last checkpoint after success.")),
    ("log_every", "options", int, typer.Option(None, help="Print a progress line every N steps (default 10).")),
    ("device", "options", str, typer.Option(None, help="cpu or cuda (default cpu).")),
    ("threads", "options", int, typer.Option(None, help="CPU threads per process.")),
    ("meter", "options", str, typer.Option(None, help="Energy meter: auto, nvml, rapl, estimate, null (default auto).")),
    ("grid_intensity_g_per_kwh", "options", float, typer.Option(None, "--grid-intensity", help="Grid carbon intensity, gCO2e/kWh.")),
    ("config", "run", Path, typer.Option(None, help="Start from this config.json (flags given override it).")),
    ("out", "run", Path, typer.Option(..., help="Run folder (new or empty; with --resume, the interrupted run's).")),
    ("resume", "run", bool, typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint.")),
    ("progress", "run", bool, typer.Option(True, help="Print a progress line every --log-every steps.")),
]  # fmt: skip


def _with_common(fn):
    """Add the shared options to a subcommand's signature; the command receives them as
    ``common={"data": {...}, "options": {...}, "run": {...}}`` (only options given)."""
    own = [p for p in inspect.signature(fn).parameters.values() if p.name != "common"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=ann)
        for name, _, ann, option in _COMMON
    ]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> None:
        common: dict[str, dict[str, Any]] = {"data": {}, "options": {}, "run": {}}
        for name, group, _, _ in _COMMON:
            value = kwargs.pop(name)
            if value is not None or group == "run":
                common[group][name] = value
        fn(**kwargs, common=common)

    del wrapper.__wrapped__  # typer must read the new signature, not fn's
    wrapper.__signature__ = inspect.Signature(own + extra)
    wrapper.__annotations__ = {}
    return wrapper


def _build(recipe: str, own: dict[str, Any], common: dict[str, dict[str, Any]]):
    """The recipe config: ``--config`` file (if any), then the flags given."""
    from wattlm.train.config import config_from_dict

    base: dict[str, Any] = {"recipe": recipe}
    file = common["run"]["config"]
    if file is not None:
        if not file.is_file():
            raise WattlmError(f"config file not found: {file}")
        try:
            base = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise WattlmError(f"{file} is not valid JSON: {err.msg}") from None
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


@app.command("finetune")
@_with_common
def finetune_command(
    model: str = typer.Option(
        None, help="Asset, .gguf, model folder or hub id (default minilm-l6)."
    ),
    task: str = typer.Option(
        None, help="auto, causal-lm or sequence-classification (default auto: from the data)."
    ),
    keep_sparsity: bool = typer.Option(
        None,
        "--keep-sparsity/--no-keep-sparsity",
        help="Hold zero weights at zero (heal a pruned model).",
    ),
    common: Any = None,
) -> None:
    """Fine-tune a model: a classifier on labelled sentences, a causal LM on text."""
    own = {"model": model, "task": task, "keep_sparsity": keep_sparsity}
    _run("finetune", _build("finetune", own, common), common)


def _student_spec(student: str | None, layers: str | None) -> str | None:
    if layers is not None and student is not None:
        raise WattlmError("give --student or --student-layers, not both")
    if layers is not None:
        return f"layers:{layers}"
    return student


@app.command("distill")
@_with_common
def distill_command(
    teacher: str = typer.Option(
        None, help="Teacher: model folder or asset (a trained classifier for classification)."
    ),
    student: str = typer.Option(
        None,
        help="layers:N, layers:i,j,k, every:K, drop-layers:R, config:FILE.json or a model (default layers:3).",
    ),
    student_layers: str = typer.Option(
        None, help="Keep N layers (evenly spaced) or a list i,j,k of the teacher's."
    ),
    temperature: float = typer.Option(
        None, help="Softmax temperature of the soft targets (default 2.0)."
    ),
    alpha: float = typer.Option(
        None, help="Weight of the soft-target loss; 1 - alpha goes to the labels (default 0.5)."
    ),
    hidden_weight: float = typer.Option(
        None, help="Weight of the hidden-state MSE loss (default 0: off)."
    ),
    task: str = typer.Option(
        None, help="auto, causal-lm or sequence-classification (default auto)."
    ),
    common: Any = None,
) -> None:
    """Distil a teacher into a smaller student built from its layers."""
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
@_with_common
def qat_command(
    model: str = typer.Option(None, help="The float model to train (folder, asset or .gguf)."),
    scheme: str = typer.Option(
        None, help="int8 weights, or int8-dynamic: weights + activations (default int8)."
    ),
    qat_backend: str = typer.Option(
        None, help="Fake quantization: auto, torchao or wattlm (default auto)."
    ),
    skip: str = typer.Option(
        None,
        help="Comma list of Linear names (globs) left in float (default lm_head,classifier,score).",
    ),
    task: str = typer.Option(
        None, help="auto, causal-lm or sequence-classification (default auto)."
    ),
    common: Any = None,
) -> None:
    """Quantization-aware training, then conversion to a real int8 model."""
    own = {
        "model": model,
        "scheme": scheme,
        "backend": qat_backend,
        "skip": None if skip is None else [s.strip() for s in skip.split(",") if s.strip()],
        "task": task,
    }
    _run("qat", _build("qat", own, common), common)


def register(root: typer.Typer) -> None:
    """Attach ``train`` and its subcommands to ``root``."""
    root.add_typer(app, name="train")
