"""The space of ``wattlm train search``: training options to try, read from YAML and checked
before any training starts.

Each dimension is a :class:`~wattlm.training.options.TrainOptions` field; a list is a
categorical choice, a ``{low, high, log}`` mapping a float range (the grid sampler takes its
``grid`` values, or three points spread over the range). Options the space leaves out keep
the default of ``wattlm train finetune``.

```yaml
name: my-train-space
dimensions:
  optimizer: [adamw, sgd, adagrad, adafactor]
  lr: {low: 1.0e-5, high: 1.0e-3, log: true, grid: [3.0e-5, 1.0e-4, 3.0e-4]}
  warmup_steps: [0, 10]
  batch_size: [8, 16, 32]
  grad_accum: [1, 2]
  precision: [fp32, bf16]
  gradient_checkpointing: [false, true]
  train_layers: [all, freeze-embeddings, freeze-lower, lora]
  length_batching: [longest, bucketed]
start:                 # tried first (after the defaults); omitted keys are sampled
  - {optimizer: adamw, lr: 1.0e-4, batch_size: 32}
```

Shipped spaces (``train-default``, ``train-quick``) live in ``src/wattlm/search/spaces/``.

Example:
    >>> space = TrainSpace.from_dict({"dimensions": {"optimizer": ["adamw", "sgd"],
    ...                                              "batch_size": [8, 16]}})
    >>> len(space.grid()), space.grid()[0]
    (4, {'optimizer': 'adamw', 'batch_size': 8})
    >>> TrainSpace.from_dict({"dimensions": {"optimizer": ["adamw", "lion"]}})
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: dimension 'optimizer' of train search space: unknown optimizer 'lion' (choose from: adamw, sgd, adagrad, adafactor, adamw8bit)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from wattlm._config import check_keys, is_int
from wattlm.errors import WattlmError
from wattlm.training.options import TrainOptions

SPACE_KEYS = ("name", "description", "dimensions", "start")
RANGE_KEYS = ("low", "high", "log", "grid")
#: the TrainOptions fields a space may search
SEARCHABLE = (
    "optimizer", "lr", "warmup_steps", "batch_size", "grad_accum", "precision",
    "gradient_checkpointing", "train_layers", "lora_rank", "length_batching", "schedule",
    "weight_decay", "momentum", "max_grad_norm",
)  # fmt: skip
SHIPPED = ("train-default", "train-quick")


@dataclass(frozen=True)
class FloatRange:
    """A float dimension: ``low``..``high`` (log scale when ``log``), ``grid`` points."""

    low: float
    high: float
    log: bool = True
    grid: tuple[float, ...] = ()

    def points(self) -> tuple[float, ...]:
        """The grid sampler's values: ``grid``, or low, middle and high."""
        if self.grid:
            return self.grid
        mid = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return (self.low, float(f"{mid:.3g}"), self.high)


def _default(name: str) -> Any:
    return getattr(TrainOptions(), name)


def _check_value(name: str, value: Any, where: str) -> None:
    """One value of dimension ``name`` must make valid TrainOptions on its own."""
    try:
        TrainOptions(**{name: value})
    except WattlmError as err:
        raise WattlmError(f"{where}: {err.message}", hint=err.hint) from None


def _dimension(name: str, spec: Any, source: str) -> tuple[Any, ...] | FloatRange:
    where = f"dimension {name!r} of {source}"
    if isinstance(spec, dict):
        spec = check_keys(spec, RANGE_KEYS, where)
        if not isinstance(_default(name), float):
            raise WattlmError(f"{where}: a range is for float options; give a list of values")
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (KeyError, TypeError, ValueError):
            raise WattlmError(f"{where}: a range needs numbers 'low' and 'high'") from None
        log = bool(spec.get("log", True))
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise WattlmError(f"{where}: need low < high, got {low} and {high}")
        if log and low <= 0:
            raise WattlmError(f"{where}: a log range needs low > 0, got {low}")
        grid = tuple(float(v) for v in spec.get("grid") or ())
        for v in (low, high, *grid):
            _check_value(name, v, where)
        if any(not low <= v <= high for v in grid):
            raise WattlmError(f"{where}: grid values must lie within [{low}, {high}]")
        return FloatRange(low, high, log, grid)
    values = tuple(spec) if isinstance(spec, list) else (spec,)
    if not values:
        raise WattlmError(f"{where} is empty", hint="give at least one value, or leave it out")
    if len(set(map(repr, values))) != len(values):
        raise WattlmError(f"{where} lists a value twice: {list(values)}")
    for v in values:
        if isinstance(_default(name), float) and is_int(v):
            v = float(v)
        _check_value(name, v, where)
    if isinstance(_default(name), float):
        values = tuple(float(v) if is_int(v) else v for v in values)
    return values


@dataclass(frozen=True)
class TrainSpace:
    """Training-option dimensions and start points (see the module docstring)."""

    dimensions: tuple[tuple[str, Any], ...]
    start: tuple[dict[str, Any], ...] = ()
    name: str = "train-space"
    description: str = ""

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "train search space") -> TrainSpace:
        """Read and fully validate a space in its YAML form."""
        data = check_keys(data, SPACE_KEYS, source)
        dims_in = data.get("dimensions")
        if not isinstance(dims_in, dict) or not dims_in:
            raise WattlmError(
                f"{source} is empty: it needs a non-empty 'dimensions' mapping",
                hint=f"search some of: {', '.join(SEARCHABLE)}",
            )
        check_keys(dims_in, SEARCHABLE, f"'dimensions' of {source}")
        dims = tuple((str(n), _dimension(str(n), s, source)) for n, s in dims_in.items())
        space = cls(
            dims, (), str(data.get("name", "train-space")), str(data.get("description", ""))
        )
        start = data.get("start") or []
        if not isinstance(start, list):
            raise WattlmError(f"'start' of {source} must be a list of option mappings")
        points = tuple(space._check_start(p, i, source) for i, p in enumerate(start))
        return dataclasses.replace(space, start=points)

    def _check_start(self, point: Any, i: int, source: str) -> dict[str, Any]:
        where = f"start point {i + 1} of {source}"
        point = check_keys(point, tuple(n for n, _ in self.dimensions), where)
        for key, value in point.items():
            dim = dict(self.dimensions)[key]
            ok = dim.low <= value <= dim.high if isinstance(dim, FloatRange) else value in dim
            if not ok:
                raise WattlmError(f"{where}: {key}={value!r} is not in the space")
        return dict(point)

    def values(self, name: str) -> tuple[Any, ...]:
        """The grid values of dimension ``name`` (its default alone when not searched)."""
        dim = dict(self.dimensions).get(name)
        if dim is None:
            return (_default(name),)
        return dim.points() if isinstance(dim, FloatRange) else dim

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Define-by-run: ask ``trial`` (an Optuna trial) for one point of the space.

        ``lora_rank`` is asked only when LoRA trains.
        """
        out: dict[str, Any] = {}
        for name, dim in self.dimensions:
            if name == "lora_rank" and out.get("train_layers", "all") != "lora":
                continue
            if isinstance(dim, FloatRange):
                out[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
            else:
                out[name] = trial.suggest_categorical(name, list(dim))
        return out

    def grid(self) -> list[dict[str, Any]]:
        """Every point of the grid once (``lora_rank`` only varies under LoRA), in order."""
        names = [n for n, _ in self.dimensions]
        out: dict[str, dict[str, Any]] = {}
        for combo in itertools.product(*(self.values(n) for n in names)):
            point = dict(zip(names, combo, strict=True))
            if "lora_rank" in point and point.get("train_layers", "all") != "lora":
                point.pop("lora_rank")
            out.setdefault(repr(sorted(point.items())), point)
        return list(out.values())

    def default_point(self) -> dict[str, Any]:
        """``wattlm train finetune``'s defaults for every searched dimension."""
        return {n: _default(n) for n, _ in self.dimensions if n != "lora_rank"}

    def to_dict(self) -> dict[str, Any]:
        dims: dict[str, Any] = {}
        for name, dim in self.dimensions:
            if isinstance(dim, FloatRange):
                dims[name] = {"low": dim.low, "high": dim.high, "log": dim.log,
                              "grid": list(dim.points())}  # fmt: skip
            else:
                dims[name] = list(dim)
        return {
            "name": self.name,
            "description": self.description,
            "dimensions": dims,
            "start": [dict(p) for p in self.start],
        }


def load_train_space(spec: str = "train-default") -> TrainSpace:
    """Read and validate a train search space: a shipped name or a YAML file."""
    import yaml

    from wattlm._yaml import load_yaml

    if spec in SHIPPED:
        path = Path(str(resources.files("wattlm.search").joinpath("spaces", f"{spec}.yaml")))
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WattlmError(
                f"train search space not found: {spec}",
                hint=f"pass a YAML file or a shipped space: {', '.join(SHIPPED)}",
            )
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise WattlmError(f"{path} is not valid YAML: {err}".splitlines()[0]) from None
    return TrainSpace.from_dict(data, source=spec if spec in SHIPPED else str(path))
