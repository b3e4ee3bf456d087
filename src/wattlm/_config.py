"""The one base of wattlm's configs, and the small validators every config uses.

A config is a frozen dataclass that subclasses :class:`Config` and validates itself in
``__post_init__`` (torchao's ``AOBaseConfig`` is the model). The base gives it the JSON
round-trip: :meth:`Config.to_dict` / :meth:`Config.from_dict` and :meth:`Config.to_json` /
:meth:`Config.from_json`, with nested configs, tuples (lists in JSON) and optional fields;
unknown keys are one :class:`~wattlm.errors.WattlmError` that lists them with the valid
ones; a config with a ``version`` field refuses a newer version than it knows.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True)
    ... class Inner(Config):
    ...     sizes: tuple[int, ...] = (1, 8)
    >>> @dataclass(frozen=True)
    ... class Outer(Config):
    ...     config_name = "outer config"
    ...     inner: Inner = field(default_factory=Inner)
    ...     threads: int | None = None
    ...     version: int = 1
    ...     def __post_init__(self) -> None:
    ...         if self.threads is not None:
    ...             check_int("threads", self.threads)
    >>> cfg = Outer(inner=Inner(sizes=(4,)))
    >>> cfg.to_dict()
    {'inner': {'sizes': [4]}, 'threads': None, 'version': 1}
    >>> Outer.from_json(cfg.to_json()) == cfg
    True
    >>> Outer.from_dict({"treads": 2})
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: unknown key(s) in outer config: treads (valid keys: inner, threads, version)
    >>> Outer.from_dict({"version": 2})
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: outer config version 2 is newer than this wattlm reads (1) (upgrade wattlm)
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Collection, Iterable
from typing import Any, ClassVar

from wattlm.errors import WattlmError

__all__ = [
    "Config",
    "check",
    "check_choice",
    "check_fraction",
    "check_int",
    "check_keys",
    "check_positive",
    "check_version",
    "is_int",
]


# -- small validators -------------------------------------------------------------------
def check(ok: bool, message: str, hint: str | None = None) -> None:
    """Raise :class:`WattlmError` with ``message`` (and ``hint``) unless ``ok``.

    Example:
        >>> check(1 < 2, "never raised")
        >>> check(False, "alpha must be in [0, 1], got 2", "e.g. 0.5")
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: alpha must be in [0, 1], got 2 (e.g. 0.5)
    """
    if not ok:
        raise WattlmError(message, hint=hint)


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (``True`` and ``False`` are not).

    Example:
        >>> is_int(3), is_int(3.0), is_int(True)
        (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int = 1) -> None:
    """``value`` must be an integer >= ``minimum``.

    Example:
        >>> check_int("repeats", 0)
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: repeats must be an integer >= 1, got 0
    """
    check(
        is_int(value) and value >= minimum, f"{name} must be an integer >= {minimum}, got {value!r}"
    )


def check_positive(name: str, value: Any, hint: str | None = None) -> None:
    """``value`` must be a finite number > 0.

    Example:
        >>> check_positive("lr", float("nan"))
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: lr must be > 0, got nan
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    check(ok and math.isfinite(value) and value > 0, f"{name} must be > 0, got {value}", hint)


def check_fraction(name: str, value: Any, hint: str | None = None) -> None:
    """``value`` must be a fraction in (0, 1].

    Example:
        >>> check_fraction("damp", 0.01)
        >>> check_fraction("damp", 0, "e.g. 0.01")
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: damp must be in (0, 1], got 0 (e.g. 0.01)
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    check(ok and 0 < value <= 1, f"{name} must be in (0, 1], got {value}", hint)


def check_choice(name: str, value: Any, choices: Collection[Any], note: str = "") -> None:
    """``value`` must be one of ``choices``; ``note`` goes before the list in the hint.

    Example:
        >>> check_choice("sampler", "cmaes", ("nsga2", "tpe"))
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: unknown sampler 'cmaes' (choose from: nsga2, tpe)
    """
    listed = f"choose from: {', '.join(map(str, choices))}"
    check(value in choices, f"unknown {name} {value!r}", f"{note}; {listed}" if note else listed)


def check_version(version: Any, current: int, what: str = "config") -> None:
    """A config written by a newer wattlm (``version > current``) is refused.

    Example:
        >>> check_version(2, 1, "bench config")
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: bench config version 2 is newer than this wattlm reads (1) (upgrade wattlm)
    """
    check(
        is_int(version) and version >= 1, f"{what} version must be an integer >= 1, got {version!r}"
    )
    check(
        version <= current,
        f"{what} version {version} is newer than this wattlm reads ({current})",
        "upgrade wattlm",
    )


def check_keys(data: Any, valid: type | Iterable[str], what: str) -> dict[str, Any]:
    """``data`` as a new dict, after checking it is a mapping holding only ``valid`` keys.

    ``valid`` is a dataclass (its field names) or the key names. Every unknown key is
    listed in one error, with the valid ones in its hint.

    Example:
        >>> check_keys({"repeats": 3}, ("repeats", "warmup"), "bench config")
        {'repeats': 3}
        >>> check_keys({"repeat": 3, "warm": 1}, ("repeats", "warmup"), "bench config")
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: unknown key(s) in bench config: repeat, warm (valid keys: repeats, warmup)
    """
    if not isinstance(data, dict):
        raise WattlmError(f"{what} must be a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(valid)] if isinstance(valid, type) else list(valid)
    unknown = sorted(set(map(str, data)) - set(names))
    if unknown:
        raise WattlmError(
            f"unknown key(s) in {what}: {', '.join(unknown)}",
            hint=f"valid keys: {', '.join(sorted(names)) or '(none)'}",
        )
    return dict(data)


# -- the base ---------------------------------------------------------------------------
def _to_json_value(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json_value(v) for k, v in value.items()}
    return value


def _from_json_value(tp: Any, value: Any, what: str) -> Any:
    """``value`` read from JSON, shaped as the type hint ``tp`` asks (configs, tuples)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                shaped = _from_json_value(arg, value, what)
                if shaped is not value:
                    return shaped
        return value
    if isinstance(tp, type) and issubclass(tp, Config) and isinstance(value, dict):
        return tp.from_dict(value, what=what)
    if (origin is tuple or tp is tuple) and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json_value(args[0], v, what) for v in value)
        if args and len(args) == len(value):
            return tuple(_from_json_value(a, v, what) for a, v in zip(args, value, strict=True))
        return tuple(value)
    return value


class Config:
    """Base of every wattlm config: frozen dataclasses that validate in ``__post_init__``.

    Class attributes a subclass may set:

    - ``config_name``: how errors name it (``"bench config"``); default: the class name.

    A dataclass field ``version`` (its default is the current version) makes
    :meth:`from_dict` refuse a newer one before anything else is read.
    """

    config_name: ClassVar[str] = ""

    @classmethod
    def describe_name(cls) -> str:
        """How errors name this config."""
        return cls.__dict__.get("config_name") or cls.config_name or cls.__name__

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field: nested configs as dicts, tuples as lists."""
        return {f.name: _to_json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Any, *, what: str | None = None) -> Any:
        """Rebuild a config from :meth:`to_dict`'s output (or a hand-written mapping).

        ``what`` names the config in errors (default: :meth:`describe_name`).
        """
        what = what or cls.describe_name()
        if isinstance(data, dict) and "version" in data:
            current = _version_default(cls)
            if current is not None:
                check_version(data["version"], current, what)
        kwargs = check_keys(data, cls, what)
        hints = _type_hints(cls)
        for name, value in kwargs.items():
            if name in hints:
                kwargs[name] = _from_json_value(hints[name], value, name)
            if isinstance(kwargs[name], list):  # JSON arrays are tuples in a frozen config
                kwargs[name] = tuple(kwargs[name])
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise WattlmError(f"{what}: {err}") from None

    def to_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Any:
        """Rebuild a config from :meth:`to_json`'s text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise WattlmError(f"{cls.describe_name()} is not valid JSON: {err}") from None
        return cls.from_dict(data)


def _version_default(cls: type) -> int | None:
    for f in dataclasses.fields(cls):
        if f.name == "version" and is_int(f.default):
            return f.default
    return None


def _type_hints(cls: type) -> dict[str, Any]:
    """Field name -> type hint; where hints cannot be resolved (a class defined in a
    function), the type of the field's default stands in for it."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        pass
    hints: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if isinstance(default, Config):
            hints[f.name] = type(default)
        elif isinstance(default, tuple):
            hints[f.name] = tuple
    return hints
