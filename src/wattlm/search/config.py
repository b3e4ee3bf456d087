"""``OptimizeConfig``: everything that defines a ``wattlm optimize`` run, validated on creation
and saved as ``config.json`` next to ``optimize.json``.

Human forms are accepted and normalised: a budget of ``"2%"`` or ``"0.02"`` becomes
``0.02``; a time budget of ``"15m"``, ``"90s"``, ``"1h30m"`` or ``"none"`` becomes seconds
(or ``None``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from wattlm._config import check_keys
from wattlm.errors import WattlmError

CONFIG_VERSION = 1
OBJECTIVES = ("decode-energy", "prefill-energy", "request-energy")
SAMPLERS = ("nsga2", "tpe", "grid", "random")
METERS = ("auto", "nvml", "rapl", "estimate")
#: fields that do not change what a trial measures: excluded from the study's identity
_NOT_IN_STUDY = {"n_trials", "time_budget_s", "storage", "ray", "ray_workers", "remeasure", "peer"}


def parse_budget(value: Any) -> float:
    """A quality budget as a fraction: ``"2%"`` → 0.02, ``"0.02"`` or ``0.02`` → 0.02.

    Example:
        >>> parse_budget("2%"), parse_budget("0.5 %"), parse_budget(0.01)
        (0.02, 0.005, 0.01)
        >>> parse_budget("2")
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: budget '2' is ambiguous (write 2% for 2 percent, or a fraction such as 0.02)
    """
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text.removesuffix("%").strip())
    except ValueError:
        raise WattlmError(
            f"budget {value!r} is not a number", hint="write it as 2% or as a fraction: 0.02"
        ) from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise WattlmError(f"budget must be a non-negative number, got {value!r}")
    if percent:
        number /= 100.0
    elif number >= 1:
        raise WattlmError(
            f"budget {value!r} is ambiguous",
            hint=f"write {text}% for {text} percent, or a fraction such as 0.02",
        )
    if number >= 1:
        raise WattlmError(f"budget must be below 100%, got {value!r}")
    return round(number, 12)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)")


def parse_duration(value: Any) -> float | None:
    """Seconds from ``"15m"``, ``"90s"``, ``"1h30m"``, ``"600"`` or a number; ``"none"`` → None.

    Example:
        >>> parse_duration("15m"), parse_duration("1h30m"), parse_duration(90), parse_duration("none")
        (900.0, 5400.0, 90.0, None)
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        if text in ("", "none", "off", "0"):
            return None
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise WattlmError(
                    f"time budget {value!r} is not a duration",
                    hint="write e.g. 15m, 90s, 1h30m or none",
                ) from None
            scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
            seconds = sum(float(n) * scale[u] for n, u in parts)
    if seconds != seconds or seconds <= 0:
        raise WattlmError(f"time budget must be positive, got {value!r}")
    return seconds


def _int_at_least(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise WattlmError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class StageSettings:
    """How a trial is measured at one stage (screen or full): the bench protocol's knobs.

    Example:
        >>> StageSettings(repeats=0)
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: repeats must be an integer >= 1, got 0
    """

    prompt_tokens: int = 256
    new_tokens: int = 64
    warmup: int = 1
    repeats: int = 5
    ppl_max_tokens: int = 8192

    def __post_init__(self) -> None:
        _int_at_least("prompt tokens", self.prompt_tokens, 1)
        _int_at_least("new tokens", self.new_tokens, 2)
        _int_at_least("warm-up runs", self.warmup, 0)
        _int_at_least("repeats", self.repeats, 1)
        _int_at_least("perplexity tokens", self.ppl_max_tokens, 2)

    @classmethod
    def from_dict(cls, data: Any, *, what: str = "stage settings") -> StageSettings:
        return cls(**check_keys(data, cls, what))


#: cheap first look at every trial: short perplexity slice, short bench, 2 repeats
SCREEN = StageSettings(prompt_tokens=128, new_tokens=32, warmup=1, repeats=2, ppl_max_tokens=2048)
#: the bench protocol's defaults, for the baseline and the candidates near the front
FULL = StageSettings()


@dataclass(frozen=True)
class OptimizeConfig:
    """What to search and how; the CLI's options one for one.

    Example:
        >>> cfg = OptimizeConfig(budget="2%", time_budget_s="20m")
        >>> cfg.budget, cfg.time_budget_s
        (0.02, 1200.0)
        >>> OptimizeConfig.from_dict(cfg.to_dict()) == cfg
        True
        >>> OptimizeConfig(sampler="cmaes")
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: unknown sampler 'cmaes' (choose from: nsga2, tpe, grid, random)
    """

    model: str = "smollm2-135m"
    data: str = "wiki-sample"
    budget: float = 0.02
    objective: str = "decode-energy"
    sampler: str = "nsga2"
    n_trials: int = 60
    time_budget_s: float | None = 840.0
    space: str = "default"
    storage: str | None = None
    ray: str | None = None
    ray_workers: int | None = None
    threads: int | None = None
    seed: int = 0
    meter: str = "auto"
    device: str = "cpu"
    peer: bool = True
    remeasure: int = 2
    screen: StageSettings = SCREEN
    full: StageSettings = FULL
    ppl_max_length: int = 512
    ppl_stride: int = 256
    version: int = field(default=CONFIG_VERSION)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", parse_budget(self.budget))
        object.__setattr__(self, "time_budget_s", parse_duration(self.time_budget_s))
        for name in ("screen", "full"):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, StageSettings.from_dict(value, what=name))
            elif not isinstance(value, StageSettings):
                raise WattlmError(f"{name} must be stage settings, got {value!r}")
        if self.objective not in OBJECTIVES:
            raise WattlmError(
                f"unknown objective {self.objective!r}",
                hint=f"choose from: {', '.join(OBJECTIVES)}",
            )
        if self.sampler not in SAMPLERS:
            raise WattlmError(
                f"unknown sampler {self.sampler!r}", hint=f"choose from: {', '.join(SAMPLERS)}"
            )
        if self.meter not in METERS:
            raise WattlmError(
                f"unknown meter {self.meter!r}",
                hint=f"optimize needs energy figures; choose from: {', '.join(METERS)}",
            )
        _int_at_least("trials (--n-trials)", self.n_trials, 1)
        _int_at_least("re-measured candidates (--remeasure)", self.remeasure, 0)
        _int_at_least("seed", self.seed, 0)
        if self.threads is not None:
            _int_at_least("threads", self.threads, 1)
        if self.ray_workers is not None:
            _int_at_least("Ray workers", self.ray_workers, 1)
        _int_at_least("perplexity window", self.ppl_max_length, 2)
        if not 0 < self.ppl_stride <= self.ppl_max_length:
            raise WattlmError(
                f"perplexity stride must be in (0, {self.ppl_max_length}], got {self.ppl_stride}"
            )
        if self.storage is not None and "://" not in self.storage:
            raise WattlmError(
                f"storage {self.storage!r} is not a database URL",
                hint="e.g. sqlite:///runs/opt.db",
            )
        if not self.space:
            raise WattlmError("space must name a shipped space or a YAML file")
        if self.version > CONFIG_VERSION:
            raise WattlmError(
                f"optimize config version {self.version} is newer than this wattlm reads",
                hint="upgrade wattlm",
            )

    @property
    def resolved_threads(self) -> int:
        """Threads of the baseline and the peer: the option, else every usable core."""
        return self.threads or len(os.sched_getaffinity(0))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> OptimizeConfig:
        return cls(**check_keys(data, cls, "optimize config"))

    @classmethod
    def from_json(cls, text: str) -> OptimizeConfig:
        return cls.from_dict(json.loads(text))

    def study_fingerprint(self, space: dict[str, Any]) -> str:
        """Hash of everything that changes what a trial measures (resume key).

        ``space`` is the resolved search space (its content, not its file name).
        """
        identity = {k: v for k, v in self.to_dict().items() if k not in _NOT_IN_STUDY}
        identity["space"] = space
        identity["resolved_threads"] = self.resolved_threads
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]
