"""One config per recipe: :class:`FinetuneConfig`, :class:`DistillConfig`, :class:`QatConfig`.

Each holds the model(s), a :class:`~wattlm.training.options.DataConfig` and the shared
:class:`~wattlm.training.options.TrainOptions`, validates itself, and round-trips through JSON
(``config.json`` of a run is exactly :meth:`to_dict`).

Example:
    >>> cfg = DistillConfig(teacher="runs/teacher", student="layers:3", temperature=2.0)
    >>> config_from_dict(cfg.to_dict()) == cfg
    True
    >>> cfg.to_dict()["recipe"]
    'distill'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from wattlm._config import Config, check, check_choice, check_positive, check_version
from wattlm.errors import WattlmError
from wattlm.train.student_spec import parse_student_spec
from wattlm.training.options import TASKS, DataConfig, TrainOptions

QAT_SCHEMES = ("int8", "int8-dynamic")
QAT_BACKENDS = ("auto", "torchao", "wattlm")
#: heads and outputs left in float by default (their error costs most, they are small)
QAT_SKIP = ("lm_head", "classifier", "score")


@dataclass(frozen=True)
class RecipeConfig(Config):
    """Base of the recipe configs: ``data``, ``options`` and the task.

    Its dict starts with the recipe's name and the config version.
    """

    recipe: ClassVar[str] = ""
    version: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "version": self.version, **super().to_dict()}

    @classmethod
    def from_dict(cls, data: Any, *, what: str | None = None) -> RecipeConfig:
        what = what or f"{cls.recipe} config"
        check(isinstance(data, dict), f"{what} must be a mapping, got {type(data).__name__}")
        data = dict(data)
        name = data.pop("recipe", cls.recipe)
        check(name == cls.recipe, f"config is for recipe {name!r}, not {cls.recipe!r}")
        check_version(data.pop("version", cls.version), cls.version, what)
        return super().from_dict(data, what=what)  # type: ignore[return-value]


def _check_task(task: str) -> None:
    check_choice("task", task, TASKS)


@dataclass(frozen=True)
class FinetuneConfig(RecipeConfig):
    """Fine-tune ``model`` on ``data``: a classifier on labelled sentences, or a causal LM
    on text.

    ``keep_sparsity`` holds every weight that is exactly zero at the start (a pruned
    model) at zero throughout: recovery fine-tuning after pruning.

    Example:
        >>> FinetuneConfig(model="minilm-l6", data=DataConfig("movie-sentiment")).task
        'auto'
    """

    recipe: ClassVar[str] = "finetune"

    model: str = "minilm-l6"
    data: DataConfig = field(default_factory=DataConfig)
    options: TrainOptions = field(default_factory=TrainOptions)
    task: str = "auto"
    keep_sparsity: bool = False

    def __post_init__(self) -> None:
        check(bool(self.model), "model must be given")
        _check_task(self.task)


@dataclass(frozen=True)
class DistillConfig(RecipeConfig):
    """Distil ``teacher`` into ``student``.

    ``student`` is a spec (see :func:`wattlm.train.student.parse_student_spec`): a layer
    count (``layers:3``), a layer list (``layers:0,2,4``), every k-th layer (``every:2``),
    ``drop-layers:0.33`` (compress's importance-based layer drop), ``config:FILE.json``
    (teacher config with overrides, e.g. a smaller width, randomly initialised), or a path
    to a model folder.

    The loss is ``alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(s, y)
    + hidden_weight · MSE(proj(h_s), h_t)``.

    Example:
        >>> DistillConfig(alpha=1.5)
        Traceback (most recent call last):
        wattlm.errors.WattlmError: alpha must be in [0, 1], got 1.5
    """

    recipe: ClassVar[str] = "distill"

    teacher: str = "minilm-l6"
    student: str = "layers:3"
    data: DataConfig = field(default_factory=DataConfig)
    options: TrainOptions = field(default_factory=TrainOptions)
    temperature: float = 2.0
    alpha: float = 0.5
    hidden_weight: float = 0.0
    task: str = "auto"

    def __post_init__(self) -> None:
        check(bool(self.teacher) and bool(self.student), "teacher and student must be given")
        check_positive("temperature", self.temperature)
        check(0 <= self.alpha <= 1, f"alpha must be in [0, 1], got {self.alpha}")
        check(self.hidden_weight >= 0, f"hidden_weight must be >= 0, got {self.hidden_weight}")
        _check_task(self.task)
        parse_student_spec(self.student)  # fails early on a malformed spec


@dataclass(frozen=True)
class QatConfig(RecipeConfig):
    """Quantization-aware training of ``model``, then conversion to real int8 layers.

    ``scheme``: ``int8`` (int8 weights, float activations; becomes compress's
    ``int8-weight``) or ``int8-dynamic`` (int8 weights and per-token int8 activations;
    becomes ``int8-dynamic``). ``backend``: ``torchao`` (its QAT fake quantizers),
    ``wattlm`` (the same arithmetic without torchao) or ``auto`` (torchao when installed).
    Linear layers matching ``skip`` stay in float.

    Example:
        >>> QatConfig(model="runs/student", scheme="int8").backend
        'auto'
    """

    recipe: ClassVar[str] = "qat"

    model: str = "minilm-l6"
    data: DataConfig = field(default_factory=DataConfig)
    options: TrainOptions = field(default_factory=TrainOptions)
    scheme: str = "int8"
    backend: str = "auto"
    skip: tuple[str, ...] = QAT_SKIP
    task: str = "auto"

    def __post_init__(self) -> None:
        check(bool(self.model), "model must be given")
        check_choice("QAT scheme", self.scheme, QAT_SCHEMES)
        check_choice("QAT backend", self.backend, QAT_BACKENDS)
        object.__setattr__(self, "skip", tuple(self.skip))
        _check_task(self.task)


CONFIGS: dict[str, type[RecipeConfig]] = {
    c.recipe: c for c in (FinetuneConfig, DistillConfig, QatConfig)
}


def config_from_dict(data: dict[str, Any]) -> RecipeConfig:
    """Rebuild the recipe config named by ``data["recipe"]`` (a ``config.json``)."""
    if not isinstance(data, dict) or data.get("recipe") not in CONFIGS:
        got = data.get("recipe") if isinstance(data, dict) else None
        raise WattlmError(
            f"unknown training recipe {got!r}", hint=f"choose from: {', '.join(CONFIGS)}"
        )
    return CONFIGS[data["recipe"]].from_dict(data)
