"""Options shared by several commands, declared once: one name, one help text each.

Every alias is a ``typing.Annotated`` type a command puts in its signature with its own
default, e.g. ``repeats: Repeats = 5``; the help text lives here only, so commands cannot
drift apart (a test compares the help of every option two commands share). A command whose
default is ``None`` ("not given: keep the config file's value") still shows the value used
through :func:`shown`. :func:`bench_config` turns the measurement flags into a
:class:`~wattlm.bench.config.BenchConfig` for ``bench``, ``compress`` and ``optimize``.

Example:
    >>> from typing import get_args
    >>> get_args(PromptTokens)[1].help
    'Prompt length in tokens.'
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args

import typer

from wattlm.errors import WattlmError

if TYPE_CHECKING:
    from wattlm.bench.config import BenchConfig

# -- what to run ------------------------------------------------------------------------------
Model = Annotated[
    str | None, typer.Option(help="Model: asset name, .gguf file, model folder or hub id.")
]
Data = Annotated[
    str | None,
    typer.Option(
        help="Data: an asset or a file; text (.txt) for perplexity, prompts and calibration, "
        "or a labelled set (.jsonl, .tsv) to train a classifier."
    ),
]
Task = Annotated[
    str | None,
    typer.Option(help="auto (from the data), causal-lm or sequence-classification."),
]
Backend = Annotated[
    str,
    typer.Option("--backend", help="Comma list of: auto, torch, llamacpp, onnxruntime, openvino."),
]
Batch = Annotated[str, typer.Option("--batch", help="Comma list of batch sizes.")]
OnnxWeights = Annotated[
    str,
    typer.Option(
        "--onnx-weights",
        help="Weights of the onnxruntime backend: fp32, or int4/int8 (MatMulNBits) with "
        "optional -b<block size 16..256> -acc<accuracy level 1-4, 4: int8 activations> and "
        "-qhead (quantize the LM head and embedding too), e.g. int4-b32-acc4.",
    ),
]
OpenVinoWeights = Annotated[
    str,
    typer.Option(
        "--openvino-weights",
        help="Weights of the openvino backend (NNCF compression): fp32, int8 (-sym/-asym, "
        "per channel) or int4 with optional -sym/-asym, -g<group size> and -r<percent of "
        "layers in 4 bits>, e.g. int4-sym-g32-r100.",
    ),
]
Runtime = Annotated[
    str,
    typer.Option(
        "--runtime",
        help="Runtime settings of the backend, a comma list of name=value (llamacpp: "
        "n_batch, n_ubatch, flash_attn=auto|on|off, kv_cache=f16|q8_0|…, "
        "speculative=off|ngram-mod|ngram-simple|ngram-map-k, spec_ngram, spec_draft; "
        "openvino: inference_precision=auto|f32|bf16), "
        "e.g. flash_attn=on,speculative=ngram-simple,spec_ngram=3.",
    ),
]
PromptTokens = Annotated[int, typer.Option(help="Prompt length in tokens.")]
NewTokens = Annotated[int, typer.Option(help="Tokens generated per sequence (exactly).")]
Warmup = Annotated[int, typer.Option(help="Unmeasured warm-up runs.")]
Repeats = Annotated[
    int,
    typer.Option(
        help="Measured repeats per run (optimize: the most at the full stage, which stops "
        "once decode energy per token is known within 5%, after at least 3)."
    ),
]
PplMaxTokens = Annotated[int, typer.Option(help="Evaluation tokens used for perplexity.")]

# -- where it runs and how it is measured ------------------------------------------------------
Threads = Annotated[
    int | None, typer.Option(help="CPU threads per process (default: all available cores).")
]
Dtype = Annotated[str, typer.Option(help="float32, bfloat16 or float16 (torch backend).")]
Device = Annotated[
    str | None,
    typer.Option(help="Device: cpu or cuda[:N] (with --meter auto it also picks the meter)."),
]
Meter = Annotated[
    str | None,
    typer.Option(
        help="Energy meter: auto, nvml, rapl, estimate (cpu-v2), estimate-v1 (the older model) "
        "or null (optimize needs energy: not null)."
    ),
]
GridIntensity = Annotated[
    float | None,
    typer.Option(
        "--grid-intensity",
        help="Grid carbon intensity in gCO2e/kWh (default: $WATTLM_GRID_INTENSITY, else 475).",
    ),
]
Seed = Annotated[
    int | None,
    typer.Option(help="Random seed (optimize: the sampler's; train: new weights, data order)."),
]

# -- the run folder and the output -------------------------------------------------------------
Out = Annotated[
    Path | None,
    typer.Option(help="Run folder for what the command writes (result, config.json, ...)."),
]
Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Start from this config JSON (a run's config.json); options given override it.",
    ),
]
Progress = Annotated[bool, typer.Option(help="Show progress on stderr.")]
PrintJson = Annotated[
    bool, typer.Option("--json", help="Print the result record (JSON) to stdout.")
]

# -- searches (``optimize``, ``train search``) -------------------------------------------------
Storage = Annotated[
    str | None,
    typer.Option(help="Optuna storage URL (resumable) (default: sqlite:///OUT/study.db)."),
]
Ray = Annotated[
    str | None, typer.Option(help="Run trials as Ray tasks: auto, an address, or local.")
]

# -- training (every ``wattlm train`` recipe) -------------------------------------------------
SeqLen = Annotated[
    int | None, typer.Option(help="Tokens per sequence: sentence cut or text chunk.")
]
MaxTrainSamples = Annotated[
    int | None, typer.Option(help="Use only N training samples, spread over the split.")
]
EvalSplit = Annotated[
    str | None, typer.Option(help="Held-out split for quality: validation or test.")
]
EvalMaxSamples = Annotated[int | None, typer.Option(help="Classifiers: examples evaluated.")]
EvalMaxTokens = Annotated[
    int | None, typer.Option(help="Causal LMs: tokens scored for perplexity.")
]
EvalMaxLength = Annotated[int | None, typer.Option(help="Causal LMs: perplexity window.")]
Lr = Annotated[float | None, typer.Option(help="Peak learning rate.")]
Epochs = Annotated[int | None, typer.Option(help="Passes over the training data.")]
MaxSteps = Annotated[int | None, typer.Option(help="Optimizer steps (the smaller bound wins).")]
MaxTime = Annotated[
    float | None, typer.Option("--max-time", help="Stop after this many seconds of training.")
]
BatchSize = Annotated[int | None, typer.Option(help="Samples per micro-batch and process.")]
GradAccum = Annotated[int | None, typer.Option(help="Micro-batches per optimizer step.")]
Optimizer = Annotated[
    str | None, typer.Option(help="adamw, sgd, adagrad, adafactor or adamw8bit on CUDA.")
]
WeightDecay = Annotated[float | None, typer.Option(help="Decoupled weight decay.")]
Momentum = Annotated[float | None, typer.Option(help="SGD momentum.")]
Schedule = Annotated[str | None, typer.Option(help="After warm-up: constant, linear or cosine.")]
WarmupSteps = Annotated[int | None, typer.Option(help="Linear warm-up steps.")]
MaxGradNorm = Annotated[
    float | None, typer.Option(help="Clip the gradient norm; 0 turns clipping off.")
]
Precision = Annotated[
    str | None,
    typer.Option(help="fp32, bf16 autocast, or fp16 autocast with a scaler on CUDA."),
]
GradientCheckpointing = Annotated[
    bool | None,
    typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Recompute activations in backward (less memory).",
    ),
]
TrainLayers = Annotated[
    str | None,
    typer.Option(help="Which weights train: all, freeze-embeddings, freeze-lower or lora."),
]
LoraRank = Annotated[int | None, typer.Option(help="Rank of the LoRA adapters.")]
LengthBatching = Annotated[
    str | None,
    typer.Option(help="longest (pad to each batch's longest) or bucketed (similar lengths)."),
]
Compile = Annotated[
    bool | None, typer.Option("--compile/--no-compile", help="torch.compile the trained model.")
]
CheckpointEvery = Annotated[
    int | None, typer.Option(help="Save a resumable checkpoint every N steps (0: never).")
]
KeepCheckpoints = Annotated[
    bool | None,
    typer.Option(
        "--keep-checkpoints/--no-keep-checkpoints", help="Keep the last checkpoint after success."
    ),
]
LogEvery = Annotated[int | None, typer.Option(help="Print a progress line every N steps.")]
Resume = Annotated[
    bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
]

T = TypeVar("T")


def shown(alias: Any, default: str) -> Any:
    """``alias`` with ``default`` shown in ``--help`` (for options whose default is ``None``).

    Example:
        >>> get_args(shown(Lr, "5e-5"))[1].show_default
        '5e-5'
        >>> get_args(Lr)[1].show_default
        True
    """
    base, info = get_args(alias)
    info = copy.copy(info)
    info.show_default = default
    return Annotated[base, info]


def int_list(text: str, what: str) -> tuple[int, ...]:
    """``"1,8"`` → ``(1, 8)``; anything else is a :class:`~wattlm.errors.WattlmError`.

    Example:
        >>> int_list("1, 8", "--batch")
        (1, 8)
        >>> int_list("1,x", "--batch")
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: --batch must be comma-separated integers, got '1,x' (e.g. --batch 1,8)
    """
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise WattlmError(
            f"{what} must be comma-separated integers, got {text!r}",
            hint="e.g. --batch 1,8",
        ) from None


def names(text: str) -> tuple[str, ...]:
    """A comma list as a tuple of stripped, non-empty names.

    Example:
        >>> names("torch, llamacpp,")
        ('torch', 'llamacpp')
    """
    return tuple(b.strip() for b in text.split(",") if b.strip())


def given(ctx: typer.Context | None, name: str) -> bool:
    """Whether option ``name`` was given (command line or environment), not defaulted.

    Without a context (a direct call), every option counts as given.
    """
    if ctx is None:
        return True
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def read_config(file: Path) -> dict[str, Any]:
    """The JSON object in ``file`` (a run's ``config.json``)."""
    if not file.is_file():
        raise WattlmError(f"config file not found: {file}", hint="pass a run's config.json")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise WattlmError(f"{file} is not valid JSON: {err.msg}") from None
    if not isinstance(data, dict):
        raise WattlmError(f"{file} must hold a JSON object, got {type(data).__name__}")
    return data


def from_flags(
    ctx: typer.Context | None,
    config: Path | None,
    flags: dict[str, Any],
    fields: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    build: Callable[[dict[str, Any]], T],
) -> T:
    """A config from flags: ``config`` file (if any) first, then the flags given over it.

    ``fields(flags, base)`` maps flags (CLI names) to config fields over ``base``;
    ``build(dict)`` makes and validates the config. With no file, every flag counts.
    """
    if config is None:
        return build(fields(flags, {}))
    base = read_config(config)
    chosen = {name: value for name, value in flags.items() if given(ctx, name)}
    return build({**base, **fields(chosen, base)})


#: CLI flag -> BenchConfig field, where the names differ
_BENCH_FIELDS = {"backend": "backends", "batch": "batch_sizes", "grid_intensity": "grid_intensity_g_per_kwh"}  # fmt: skip


def _bench_fields(flags: dict[str, Any], _base: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in flags.items():
        if name == "backend":
            value = names(value)
        elif name == "batch":
            value = int_list(value, "--batch")
        elif name == "runtime":
            value = runtime_settings(value)
        out[_BENCH_FIELDS.get(name, name)] = value
    return out


def runtime_settings(text: str) -> dict[str, Any]:
    """``--runtime`` as a dict (integers as ints; the backend checks names and values).

    Example:
        >>> runtime_settings("flash_attn=on, n_ubatch=128"), runtime_settings("")
        ({'flash_attn': 'on', 'n_ubatch': 128}, {})
    """
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise WattlmError(
                f"--runtime: {item!r} is not name=value",
                hint="e.g. --runtime flash_attn=on,kv_cache=q8_0",
            )
        value = value.strip()
        out[name.strip()] = int(value) if value.isdigit() else value
    return out


def bench_config(
    ctx: typer.Context | None = None, *, config: Path | None = None, **flags: Any
) -> BenchConfig:
    """The :class:`~wattlm.bench.config.BenchConfig` of a command's measurement flags.

    Flags use the CLI's names (``backend="torch,llamacpp"``, ``batch="1,8"``,
    ``grid_intensity``; the rest as the config's fields); flags left out keep the config's
    defaults. With ``config`` (a run's ``config.json``) the file is the base and only the
    flags given on the command line (per ``ctx``) override it.

    Example:
        >>> cfg = bench_config(backend="torch", batch="1,4", repeats=3)
        >>> cfg.backends, cfg.batch_sizes, cfg.repeats, cfg.new_tokens
        (('torch',), (1, 4), 3, 64)
    """
    from wattlm.bench.config import BenchConfig

    cfg = from_flags(ctx, config, flags, _bench_fields, BenchConfig.from_dict)
    warn_if_emulated(cfg.dtype, cfg.device)
    return cfg


def warn_if_emulated(precision: str, device: str) -> None:
    """One warning line on stderr, before any work, when this CPU only emulates
    ``precision`` (bf16 without AVX-512 BF16/AMX runs slower than float32)."""
    from wattlm.measure.precision_support import emulated_precision_warning

    line = emulated_precision_warning(precision, device=device)
    if line is not None:
        typer.secho(line, err=True, fg=typer.colors.YELLOW)
