"""Steps every recipe takes, in the order it takes them: open the run folder, decide the task,
load and check the model against the data, describe the run for resume checks, and save.

Every check here runs before training starts, so bad input fails in seconds, not after an
epoch: data without labels for a classifier, a label count that does not match the model's
head, an out folder that is not empty, an incompatible checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from wattlm.data.labelled import load_labelled
from wattlm.errors import WattlmError
from wattlm.models.load import LoadedModel, load_model, save_model
from wattlm.train.config import RecipeConfig
from wattlm.training import checkpoint as ckpt
from wattlm.training.data import LABELLED, TEXT, LabelledData, build_train_data, data_kind
from wattlm.training.ddp import DistEnv, barrier
from wattlm.training.layers import merge_lora
from wattlm.training.loop import disable_checkpointing
from wattlm.training.options import DataConfig, TrainOptions

#: options that may change between an interrupted run and its resume
_FREE_OPTIONS = {
    "log_every", "checkpoint_every", "keep_checkpoints", "max_time_s", "meter",
    "grid_intensity_g_per_kwh", "threads",
}  # fmt: skip


def open_run(out_dir: str | Path, *, resume: bool, env: DistEnv) -> Path:
    """The run folder, checked on every process before any of them writes to it."""
    out = Path(out_dir)
    if resume:
        if ckpt.latest_checkpoint(out) is None:
            raise WattlmError(f"nothing to resume: {out} has no checkpoint", hint="drop --resume")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WattlmError(
            f"{out} exists and is not empty",
            hint="pass a new --out folder, or --resume to continue a run from its checkpoint",
        )
    barrier(env)
    return out


def set_threads(options: TrainOptions) -> None:
    if options.threads is not None:
        torch.set_num_threads(options.threads)


def model_spec(spec: str) -> str:
    """A training run's folder stands for the model it saved (``RUN/model``), so
    ``--teacher runs/teacher`` and ``--teacher runs/teacher/model`` are the same.

    Example:
        >>> model_spec("minilm-l6")
        'minilm-l6'
    """
    run = Path(spec).expanduser()
    if (run / "result.json").is_file() and (run / "model" / "config.json").is_file():
        return str(run / "model")
    return spec


def peek_model(spec: str) -> tuple[str | None, int | None]:
    """``(architecture, num_labels)`` from a local model folder's config (no loading)."""
    file = Path(model_spec(spec)).expanduser() / "config.json"
    if not file.is_file():
        return None, None
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None, None
    arch = (cfg.get("architectures") or [None])[0]
    labels = cfg.get("id2label")
    num = len(labels) if isinstance(labels, dict) else cfg.get("num_labels")
    return arch, num


def resolve_task(task: str, data: DataConfig, model_spec: str, model_task: str | None) -> str:
    """The task to train, from ``task`` or the data; refuses mismatched model and data.

    ``model_task`` is the task of an already loaded model (``None``: peek at the spec).
    """
    kind = data_kind(data.data)
    if model_task is None:
        arch, _ = peek_model(model_spec)
        if arch and arch.endswith("ForSequenceClassification"):
            model_task = "sequence-classification"
    if task == "auto":
        task = model_task or ("sequence-classification" if kind == LABELLED else "causal-lm")
    if task == "sequence-classification" and kind == TEXT:
        raise WattlmError(
            f"data without labels for a classifier: {data.data} is a text corpus",
            hint="train a classifier on labelled data (movie-sentiment, a .jsonl or .tsv file)",
        )
    if task == "causal-lm" and kind == LABELLED:
        raise WattlmError(
            f"{data.data} is a labelled set; causal-LM training needs text",
            hint="use a text corpus (wiki-sample, a .txt file) or --task sequence-classification",
        )
    return task


def load_for_task(spec: str, task: str, data: DataConfig, *, device: str, seed: int) -> LoadedModel:
    """Load ``spec`` for ``task``; a classifier gets a head with the data's label count
    (a new one, seeded, unless the model has one, which must match)."""
    spec = model_spec(spec)
    if task != "sequence-classification":
        return load_model(spec, task=task, device=device)
    n = check_class_count(LabelledData(load_labelled(data.data, "train"), None, data.seq_len))
    arch, have = peek_model(spec)
    if arch and arch.endswith("ForSequenceClassification"):
        if have is not None and have != n:
            raise label_mismatch(have, n)
        lm = load_model(spec, task=task, device=device)
    else:
        torch.manual_seed(seed)  # the new head's initial weights
        lm = load_model(spec, task=task, device=device, num_labels=n)
    return ensure_pad_token(lm)


def check_class_count(train_data: LabelledData) -> int:
    n = train_data.num_labels
    if n < 2 or min(train_data.labels) < 0:
        raise WattlmError(
            f"a classifier needs labels 0..N-1 with N >= 2; the training split has labels "
            f"{sorted(set(train_data.labels))[:5]}"
        )
    return n


def label_mismatch(model_classes: int, data_classes: int) -> WattlmError:
    return WattlmError(
        f"label count mismatch: the model has {model_classes} classes, the data "
        f"{data_classes} (labels 0..{data_classes - 1})",
        hint="use data with the model's labels, or start from a model without a head",
    )


def check_model_labels(lm: LoadedModel, train_data: Any) -> None:
    """A classifier's head must have exactly the data's number of classes."""
    if lm.task == "sequence-classification":
        n = check_class_count(train_data)
        if lm.model.config.num_labels != n:
            raise label_mismatch(lm.model.config.num_labels, n)


def ensure_pad_token(lm: LoadedModel) -> LoadedModel:
    """Classifiers batch padded sentences: give a tokenizer without one a pad token (EOS)."""
    tok = lm.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if getattr(lm.model.config, "pad_token_id", None) is None:
        lm.model.config.pad_token_id = tok.pad_token_id
    return lm


def train_data_for(config: RecipeConfig, tokenizer, task: str):
    kind = LABELLED if task == "sequence-classification" else TEXT
    d = config.data
    return build_train_data(kind, d.data, tokenizer, d.seq_len, d.max_train_samples)


def _flat(prefix: str, obj: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flat(name + ".", value, out)
        elif not (prefix == "options." and key in _FREE_OPTIONS):
            out[name] = value
    return out


def compat_for(
    config: RecipeConfig, module: torch.nn.Module, n_train: int, env: DistEnv
) -> dict[str, Any]:
    """What a checkpoint must match: the config (minus logging/time/meter options), the
    shapes of the trained parameters, the training-set size and the process count."""
    out = _flat("", config.to_dict(), {})
    out.update(
        parameters=ckpt.parameter_signature(module),
        train_samples=n_train,
        world_size=env.world_size,
    )
    return out


def save_trained(lm: LoadedModel, out: Path) -> None:
    """Save the trained model to ``out/model`` and point ``lm`` at it (process 0 only)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()  # wattlm prints its own lines
    model = lm.model
    disable_checkpointing(model)
    merge_lora(model)  # LoRA adapters folded into the weights: the saved model needs no PEFT
    if hasattr(getattr(model, "config", None), "use_cache"):
        model.config.use_cache = True  # inference default; training turned it off
    model.eval()
    if lm.compression and model.get_output_embeddings() is None:
        # nothing to tie (a classifier); load_compressed would look for an output embedding
        model.config.tie_word_embeddings = False
    save_model(lm, out / "model")
    lm.path, lm.format = (out / "model").resolve(), "hf"


def finish(out: Path, env: DistEnv, options: TrainOptions) -> None:
    """After a successful run: drop checkpoints unless asked to keep them."""
    if env.is_main:
        keep = ckpt.latest_checkpoint(out) if options.keep_checkpoints else None
        ckpt.prune_checkpoints(out, keep=keep)
    barrier(env)
