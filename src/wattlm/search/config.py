"""``OptimizeConfig``: everything that defines a ``wattlm optimize`` run, validated on creation
and saved as ``config.json`` next to ``optimize.json``.

Human forms are accepted and normalised: a budget of ``"2%"`` or ``"0.02"`` becomes
``0.02``; a time budget of ``"15m"``, ``"90s"``, ``"1h30m"`` or ``"none"`` becomes seconds
(or ``None``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from wattlm._config import Config, check, check_choice, check_int, check_version
from wattlm.errors import WattlmError
from wattlm.measure import ENERGY_METERS
from wattlm.measure.views import VIEWS
from wattlm.report.heal_payback import SERVING_TOKENS

CONFIG_VERSION = 1
OBJECTIVES = ("decode-energy", "prefill-energy", "request-energy")
SAMPLERS = ("nsga2", "tpe", "grid", "random")
#: fields that do not change what a trial measures: excluded from the study's identity
_NOT_IN_STUDY = {
    "n_trials",
    "time_budget_s",
    "storage",
    "ray",
    "ray_workers",
    "remeasure",
    "peer",
    "serving_tokens",
}


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


@dataclass(frozen=True)
class StageSettings(Config):
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
    #: measured repeats; with ``rel_width`` the cap of adaptive repeats
    repeats: int = 5
    ppl_max_tokens: int = 8192
    #: adaptive repeats: stop once the 95% interval of decode J/token is at most this share
    #: of its median (``None``: always ``repeats``)
    rel_width: float | None = None
    #: repeats before ``rel_width`` is checked
    min_repeats: int = 2

    config_name = "stage settings"

    def __post_init__(self) -> None:
        check_int("prompt tokens", self.prompt_tokens, 1)
        check_int("new tokens", self.new_tokens, 2)
        check_int("warm-up runs", self.warmup, 0)
        check_int("repeats", self.repeats, 1)
        check_int("perplexity tokens", self.ppl_max_tokens, 2)
        check_int("minimum repeats", self.min_repeats, 2)
        if self.rel_width is not None:
            check(
                isinstance(self.rel_width, (int, float)) and 0 < self.rel_width < 10,
                f"rel_width must be a positive share of the median (e.g. 0.1), got {self.rel_width!r}",
            )


#: cheap first look at every trial: a short perplexity slice (1,024 tokens: perplexity is
#: a screened trial's largest cost once its bench is short), short prompts and
#: generations, repeats until decode J/token is known within 10% (2 to 4 repeats)
SCREEN = StageSettings(
    prompt_tokens=64,
    new_tokens=16,
    warmup=1,
    repeats=4,
    ppl_max_tokens=1024,
    rel_width=0.10,
    min_repeats=2,
)
#: the baseline, the peer and the candidates near the front: the bench protocol's work
#: (256-token prompts, 64 new tokens) with repeats until decode J/token is known within 5%
#: (3 to 5 repeats), and perplexity on 4,096 tokens (every trial is compared with the
#: baseline on the same tokens, so the paired difference is known far more tightly than
#: either figure; ``wattlm bench`` scores 8,192)
FULL = StageSettings(ppl_max_tokens=4096, rel_width=0.05, min_repeats=3)


@dataclass(frozen=True)
class OptimizeConfig(Config):
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
    #: a bound on mean KL divergence from the baseline (nats/token) on top of ``budget``;
    #: ``None``: perplexity only (see :mod:`wattlm.search.quality_budget`)
    kl_budget: float | None = None
    objective: str = "decode-energy"
    #: ``total`` (idle-inclusive, the default) or ``marginal``: what the objective reads
    energy_view: str = "total"
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
    remeasure: int = 3
    #: screen stage: stop a trial's bench once its decode J/token is above this factor × the
    #: best feasible screened figure so far (``None``: never; decode-energy objective only)
    prune_factor: float | None = 1.5
    #: screen stage: perplexity increase beyond ``budget + quality_margin`` ends a trial
    #: before its energy is measured (``None``: always measure energy)
    quality_margin: float | None = 0.01
    screen: StageSettings = SCREEN
    full: StageSettings = FULL
    ppl_max_length: int = 512
    ppl_stride: int = 256
    #: served tokens a trial's healing energy is spread over in the decision (the amortised
    #: objective, :mod:`wattlm.report.heal_payback`); trials without ``heal`` are unchanged
    serving_tokens: int = SERVING_TOKENS
    version: int = field(default=CONFIG_VERSION)

    config_name = "optimize config"

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", parse_budget(self.budget))
        object.__setattr__(self, "time_budget_s", parse_duration(self.time_budget_s))
        for name in ("screen", "full"):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, StageSettings.from_dict(value, what=name))
            elif not isinstance(value, StageSettings):
                raise WattlmError(f"{name} must be stage settings, got {value!r}")
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("energy view", self.energy_view, VIEWS)
        check_choice("sampler", self.sampler, SAMPLERS)
        check_choice("meter", self.meter, ENERGY_METERS, "optimize needs energy figures")
        check_int("trials (--n-trials)", self.n_trials, 1)
        check_int("re-measured candidates (--remeasure)", self.remeasure, 0)
        check_int("seed", self.seed, 0)
        if self.quality_margin is not None:
            object.__setattr__(self, "quality_margin", parse_budget(self.quality_margin))
        if self.kl_budget is not None:
            check(
                isinstance(self.kl_budget, (int, float))
                and not isinstance(self.kl_budget, bool)
                and 0 < self.kl_budget < float("inf"),
                f"KL budget must be a positive number of nats per token, got {self.kl_budget!r}",
                "e.g. --kl-budget 0.01 (llama.cpp's q8_0 export of SmolLM2-135M: about 0.003)",
            )
        if self.prune_factor is not None:
            check(
                isinstance(self.prune_factor, (int, float)) and self.prune_factor > 1,
                f"prune factor must be a number above 1 (or none), got {self.prune_factor!r}",
                "e.g. 1.5: stop screening a trial at 1.5x the best energy so far",
            )
        if self.threads is not None:
            check_int("threads", self.threads, 1)
        if self.ray_workers is not None:
            check_int("Ray workers", self.ray_workers, 1)
        check_int("perplexity window", self.ppl_max_length, 2)
        check(
            isinstance(self.serving_tokens, int)
            and not isinstance(self.serving_tokens, bool)
            and self.serving_tokens > 0,
            f"serving tokens must be a positive whole number, got {self.serving_tokens!r}",
            "e.g. --serving-tokens 10000000 (the tokens a deployment serves; healing energy "
            "is spread over them)",
        )
        check(
            0 < self.ppl_stride <= self.ppl_max_length,
            f"perplexity stride must be in (0, {self.ppl_max_length}], got {self.ppl_stride}",
        )
        check(
            self.storage is None or "://" in self.storage,
            f"storage {self.storage!r} is not a database URL",
            "e.g. sqlite:///runs/opt.db",
        )
        check(bool(self.space), "space must name a shipped space or a YAML file")
        check_version(self.version, CONFIG_VERSION, "optimize config")

    @property
    def resolved_threads(self) -> int:
        """Threads of the baseline and the peer: the option, else every usable core."""
        return self.threads or len(os.sched_getaffinity(0))

    def study_fingerprint(self, space: dict[str, Any]) -> str:
        """Hash of everything that changes what a trial measures (resume key).

        ``space`` is the resolved search space (its content, not its file name).
        """
        identity = {k: v for k, v in self.to_dict().items() if k not in _NOT_IN_STUDY}
        identity["space"] = space
        identity["resolved_threads"] = self.resolved_threads
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]
