"""The compression verb, the config base class and the handler registry.

Every method is a frozen dataclass subclassing :class:`CompressConfig` (validated in
``__post_init__``, JSON round-trip via :meth:`CompressConfig.to_dict` /
:meth:`CompressConfig.from_dict`) plus one handler registered for it::

    @register("int8-weight")
    @dataclass(frozen=True)
    class Int8WeightConfig(CompressConfig):
        ...

    @Int8WeightConfig.handler
    def _apply(model, config, ctx): ...

``compress_(model, config)`` changes ``model`` in place, like torchao's ``quantize_``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from wattlm._config import Config
from wattlm.compress.calibration import calibration_ids
from wattlm.errors import WattlmError

#: method name (as written in recipes) -> config class; an allow-list
_METHODS: dict[str, type[CompressConfig]] = {}
#: config class -> handler
_HANDLERS: dict[type[CompressConfig], Callable[..., dict[str, Any] | None]] = {}
#: config class -> restorer (rebuilds module structure before a saved state dict loads)
_RESTORERS: dict[type[CompressConfig], Callable[..., None]] = {}


@dataclass
class CompressContext:
    """What a handler may need besides the model and its config.

    Attributes:
        tokenizer: the model's tokenizer (calibration text, export).
        calibration: token ids of calibration sequences, shape ``[n, seq_len]``; built
            lazily by :meth:`calibration_batch` when a method asks for it.
        device: where calibration runs.
        log: figures each stage reports (sparsity, bytes, ranks), in stage order.
    """

    tokenizer: Any = None
    calibration: torch.Tensor | None = None
    calibration_data: str = "wiki-sample"
    device: str = "cpu"
    log: list[dict[str, Any]] = field(default_factory=list)

    def calibration_batch(self, samples: int, seq_len: int) -> torch.Tensor:
        """``samples`` sequences of ``seq_len`` token ids from the train split."""
        if (
            self.calibration is not None
            and self.calibration.shape[0] >= samples
            and (self.calibration.shape[1] >= seq_len)
        ):
            return self.calibration[:samples, :seq_len]
        if self.tokenizer is None:
            raise WattlmError("this method needs calibration text, but no tokenizer was given")

        self.calibration = calibration_ids(
            self.tokenizer, self.calibration_data, samples=samples, seq_len=seq_len
        )
        return self.calibration


@dataclass(frozen=True)
class CompressConfig(Config):
    """Base of every method's config. Subclasses validate in ``__post_init__``.

    Example:
        >>> CompressConfig.from_dict({"method": "cast", "dtype": "float16"})
        CastConfig(dtype='float16', keep=())
        >>> CompressConfig.from_dict({"method": "cast", "dtyp": "float16"})
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: unknown key(s) in cast config: dtyp (valid keys: dtype, keep)
    """

    method: ClassVar[str] = ""
    version: ClassVar[int] = 1

    @classmethod
    def handler(cls, fn: Callable[..., dict[str, Any] | None]) -> Callable[..., Any]:
        """Decorator: register ``fn(model, config, ctx) -> report dict`` for this config."""
        _HANDLERS[cls] = fn
        return fn

    @classmethod
    def restorer(cls, fn: Callable[..., None]) -> Callable[..., Any]:
        """Decorator: register ``fn(model, config)`` that rebuilds, without data, the module
        structure this method leaves (e.g. quantized Linear shells with empty buffers), so
        a saved compressed state dict can load into a freshly built model. Methods that
        only change values (pruning masks applied to dense weights) or the HF config
        itself (structured pruning) need none."""
        _RESTORERS[cls] = fn
        return fn

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the method name first."""
        return {"method": self.method, **super().to_dict()}

    @classmethod
    def from_dict(cls, data: Any, *, what: str | None = None) -> CompressConfig:
        """Build the config named by ``data["method"]``; unknown keys are an error."""
        if not isinstance(data, dict):
            raise WattlmError(f"{what or 'a compression stage'} must be a mapping")
        data = dict(data)
        name = data.pop("method", None)
        target = config_class(name) if cls is CompressConfig else cls
        if name is not None and name != target.method:
            raise WattlmError(f"method {name!r} does not match {target.__name__}")
        return super(CompressConfig, target).from_dict(data, what=what or f"{target.method} config")


def register(name: str) -> Callable[[type[CompressConfig]], type[CompressConfig]]:
    """Class decorator: make a config class available under ``name`` in recipes."""

    def wrap(cls: type[CompressConfig]) -> type[CompressConfig]:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"compression method {name!r} registered twice")
        cls.method = name
        _METHODS[name] = cls
        return cls

    return wrap


def _load_builtin_methods() -> None:
    import importlib

    for module in (
        "precision",
        "quantize",
        "gptq",
        "prune",
        "prune_nm",
        "structured",
        "lowrank",
        "heal",
    ):
        try:
            importlib.import_module(f"wattlm.compress.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"wattlm.compress.{module}":
                raise


def method_names() -> list[str]:
    """Every registered method name, sorted."""
    _load_builtin_methods()
    return sorted(_METHODS)


def config_class(name: str | None) -> type[CompressConfig]:
    """The config class registered under ``name``."""
    _load_builtin_methods()
    if name not in _METHODS:
        raise WattlmError(
            f"unknown compression method {name!r}", hint=f"choose from: {', '.join(method_names())}"
        )
    return _METHODS[name]


def compress_(
    model: torch.nn.Module, config: CompressConfig, ctx: CompressContext | None = None
) -> dict[str, Any]:
    """Apply one compression method to ``model`` in place; return what it reports.

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> from wattlm.compress.precision import CastConfig
        >>> lm = tiny_causal_lm()
        >>> report = compress_(lm.model, CastConfig(dtype="bfloat16"))
        >>> lm.model.model.layers[0].mlp.up_proj.weight.dtype
        torch.bfloat16
    """
    _load_builtin_methods()
    handler = _HANDLERS.get(type(config))
    if handler is None:
        raise WattlmError(f"no handler registered for {type(config).__name__}")
    ctx = ctx or CompressContext()
    report = handler(model, config, ctx) or {}
    entry = {"method": config.method, "config": config.to_dict(), **report}
    ctx.log.append(entry)
    return entry


def restore_(model: torch.nn.Module, config: CompressConfig) -> None:
    """Rebuild the module structure ``config`` leaves, with placeholder values (loading)."""
    _load_builtin_methods()
    restorer = _RESTORERS.get(type(config))
    if restorer is not None:
        restorer(model, config)
