"""Build a distillation student from its teacher.

Student specs (``wattlm train distill --student SPEC``):

- ``layers:3``: keep 3 layers, evenly spaced from the first to the last (6 → ``[0, 2, 5]``);
- ``layers:0,2,4``: keep exactly these layers (one layer: ``layers:2,``);
- ``every:2``: keep every 2nd layer starting at the first (6 → ``[0, 2, 4]``, DistilBERT);
- ``drop-layers:0.33``: drop the third of the layers compress's ``drop-layers`` judges least
  important (Llama-family models; angular distance on calibration text);
- ``config:FILE.json``: the teacher's config with these overrides (e.g. a smaller
  ``hidden_size``), randomly initialised;
- anything else: a model (folder, asset name) loaded as is.

Kept layers are copied from the teacher (every tensor equal), as are the embeddings, final
norm and head, so the student starts close to the teacher. Works for BERT-style encoders
(``bert.encoder.layer``) and Llama-style decoders (``model.layers``).

Example:
    >>> parse_student_spec("layers:3").count, parse_student_spec("every:2").every
    (3, 2)
    >>> select_layers(6, parse_student_spec("layers:3"))
    [0, 2, 5]
    >>> select_layers(6, parse_student_spec("every:2"))
    [0, 2, 4]
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wattlm.compress import CompressContext, compress_
from wattlm.compress.structured import LayerDropConfig
from wattlm.errors import WattlmError
from wattlm.models.load import LoadedModel, load_model
from wattlm.train.run import model_spec
from wattlm.train.student_spec import StudentSpec, parse_student_spec

#: where transformer layers live in common architectures, tried first
LAYER_PATHS = (
    "model.layers",
    "bert.encoder.layer",
    "roberta.encoder.layer",
    "encoder.layer",
    "distilbert.transformer.layer",
    "transformer.h",
)


def select_layers(n: int, spec: StudentSpec) -> list[int]:
    """Indices of the teacher's ``n`` layers that a count/list/every spec keeps."""
    if spec.count is not None:
        if spec.count >= n:
            raise WattlmError(
                f"a student with {spec.count} layers is not smaller than its {n}-layer teacher",
                hint=f"ask for 1 to {n - 1} layers",
            )
        if spec.count == 1:
            return [0]
        return sorted({round(i * (n - 1) / (spec.count - 1)) for i in range(spec.count)})
    if spec.every is not None:
        return list(range(0, n, spec.every))
    layers = list(spec.layers or ())
    if layers and layers[-1] >= n:
        raise WattlmError(
            f"layer {layers[-1]} is out of range: the teacher has {n} layers",
            hint=f"use indices 0 to {n - 1}",
        )
    return layers


def layer_path(model: torch.nn.Module) -> str:
    """Dotted name of the ModuleList holding the transformer layers."""
    n = getattr(model.config, "num_hidden_layers", None)
    for path in LAYER_PATHS:
        try:
            found = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(found, torch.nn.ModuleList) and (n is None or len(found) == n):
            return path
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and n is not None and len(module) == n:
            return name
    raise WattlmError(
        f"cannot find the transformer layers of {type(model).__name__}",
        hint="students by layer are supported for BERT-style and Llama-style models",
    )


def _clean_config(model: torch.nn.Module) -> Any:
    config = copy.deepcopy(model.config)
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config  # a GGUF load's marker; the student is plain float
    return config


def _cut_per_layer(config: Any, n: int, keep: list[int]) -> None:
    config.num_hidden_layers = len(keep)
    for key, value in list(vars(config).items()):
        if isinstance(value, (list, tuple)) and len(value) == n and key != "architectures":
            setattr(config, key, [value[i] for i in keep])


def _new_model(teacher: torch.nn.Module, config: Any) -> torch.nn.Module:
    dtype = next(teacher.parameters()).dtype
    model = type(teacher)(config).to(dtype)
    return model.to(next(teacher.parameters()).device)


def student_from_layers(teacher: LoadedModel, keep: list[int]) -> LoadedModel:
    """A copy of ``teacher`` with only layers ``keep`` (in order), every tensor copied."""
    path = layer_path(teacher.model)
    n = len(teacher.model.get_submodule(path))
    config = _clean_config(teacher.model)
    _cut_per_layer(config, n, keep)
    student = _new_model(teacher.model, config)
    source = teacher.model.state_dict()
    mapped = {}
    for key in student.state_dict():
        name = key
        if key.startswith(path + "."):
            j, _, rest = key[len(path) + 1 :].partition(".")
            name = f"{path}.{keep[int(j)]}.{rest}"
        mapped[key] = source[name].detach().clone()
    student.load_state_dict(mapped, strict=True)
    student.eval()
    return LoadedModel(
        student,
        teacher.tokenizer,
        spec=f"{teacher.spec} (layers {','.join(map(str, keep))})",
        task=teacher.task,
        notes=[f"student of {teacher.spec}: layers {keep} of {n} copied from the teacher"],
    )


def student_from_config(teacher: LoadedModel, file: str, *, seed: int) -> LoadedModel:
    """The teacher's config updated from a JSON file, randomly initialised (seeded)."""
    path = Path(file).expanduser()
    try:
        overrides = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise WattlmError(f"cannot read student config {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise WattlmError(f"student config {path} is not valid JSON: {err.msg}") from None
    if not isinstance(overrides, dict):
        raise WattlmError(f"student config {path} must be a JSON object of config fields")
    config = _clean_config(teacher.model)
    unknown = sorted(k for k in overrides if not hasattr(config, k))
    if unknown:
        raise WattlmError(f"student config {path}: unknown field(s) {', '.join(unknown)}")
    for key, value in overrides.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    try:
        student = _new_model(teacher.model, config).eval()
    except (ValueError, RuntimeError) as err:
        raise WattlmError(f"student config {path} does not build a model: {err}") from None
    return LoadedModel(
        student,
        teacher.tokenizer,
        spec=f"{teacher.spec} (config {path.name})",
        task=teacher.task,
        notes=[f"student built from {path.name} (teacher config with overrides), random init"],
    )


def student_by_dropping(
    teacher: LoadedModel, ratio: float, calibration_data: str
) -> tuple[LoadedModel, list[int], dict[str, Any]]:
    """Drop ``ratio`` of the layers with compress's ``drop-layers`` (importance-ranked)."""

    n = len(teacher.model.get_submodule(layer_path(teacher.model)))
    student = student_from_layers(teacher, list(range(n)))  # a clean, independent copy
    ctx = CompressContext(tokenizer=teacher.tokenizer, calibration_data=calibration_data)
    report = compress_(student.model, LayerDropConfig(ratio=ratio), ctx)
    removed = set(report["removed_layers"])
    keep = [i for i in range(n) if i not in removed]
    student.spec = f"{teacher.spec} (drop-layers {ratio})"
    student.notes = [f"student of {teacher.spec}: drop-layers {ratio} removed {sorted(removed)}"]
    return student, keep, report


def even_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher layer each student layer imitates when none was copied: evenly spread,
    the last student layer on the last teacher layer.

    Example:
        >>> even_layer_map(3, 6)
        [1, 3, 5]
    """
    return [round((j + 1) * teacher_layers / student_layers) - 1 for j in range(student_layers)]


def check_pair(teacher: LoadedModel, student: LoadedModel) -> None:
    """Teacher and student must share task, vocabulary and (classifiers) label count."""
    if teacher.task != student.task:
        raise WattlmError(
            f"teacher is a {teacher.task} model but the student is a {student.task} model"
        )
    tv, sv = teacher.model.config.vocab_size, student.model.config.vocab_size
    same_tokens = teacher.tokenizer.get_vocab() == student.tokenizer.get_vocab()
    if tv != sv or not same_tokens:
        raise WattlmError(
            f"teacher/student vocabulary mismatch: the teacher has {tv} token ids "
            f"({len(teacher.tokenizer)} in its tokenizer), the student {sv} "
            f"({len(student.tokenizer)}){'' if same_tokens else ', and their tokenizers differ'}",
            hint="distil into a student that uses the teacher's tokenizer",
        )
    if teacher.task == "sequence-classification":
        tn, sn = teacher.model.config.num_labels, student.model.config.num_labels
        if tn != sn:
            raise WattlmError(
                f"label count mismatch: the teacher has {tn} classes, the student {sn}"
            )


@dataclass
class Student:
    """A built student and what the distillation needs to know about it."""

    loaded: LoadedModel
    layer_map: list[int]
    report: dict[str, Any] = field(default_factory=dict)


def build_student(
    teacher: LoadedModel,
    spec: str,
    *,
    calibration_data: str = "wiki-sample",
    seed: int = 0,
    student: LoadedModel | None = None,
) -> Student:
    """The student described by ``spec`` (or ``student`` when given), checked against the
    teacher, with the teacher layer each student layer imitates (``layer_map``)."""
    parsed = parse_student_spec(spec)
    n = len(teacher.model.get_submodule(layer_path(teacher.model)))
    if student is None and parsed.model is None:
        if parsed.drop_ratio is not None:
            built, keep, report = student_by_dropping(teacher, parsed.drop_ratio, calibration_data)
            return Student(built, keep, {"kept_layers": keep, "drop_layers": report})
        if parsed.config_file is not None:
            built = student_from_config(teacher, parsed.config_file, seed=seed)
        else:
            keep = select_layers(n, parsed)
            return Student(student_from_layers(teacher, keep), keep, {"kept_layers": keep})
    else:
        if student is None:
            student = load_model(model_spec(parsed.model), task=teacher.task)
        built = student
    check_pair(teacher, built)
    m = len(built.model.get_submodule(layer_path(built.model)))
    return Student(built, even_layer_map(m, n), {})
