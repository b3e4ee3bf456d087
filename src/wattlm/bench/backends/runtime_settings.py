"""Runtime settings a backend lets the search vary (llama.cpp's flash attention, KV-cache
type, ``n_batch``…): each declared once, with its default and its allowed values.

A backend class lists its settings in :attr:`~wattlm.bench.backends.base.Backend.runtime_settings`;
the search space, the candidate and the bench config only go through :func:`check_settings`,
so none of them switches on backend names. A setting left out means the runtime's default,
so records written before a setting existed still describe what ran.

Example:
    >>> s = RuntimeSetting("flash_attn", "auto", ("auto", "on", "off"))
    >>> s.check("on", "here"), s.check(True, "here")
    ('on', 'on')
    >>> RuntimeSetting("n_batch", 2048).check(0, "here")
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: here: n_batch must be an integer >= 1, got 0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wattlm.errors import WattlmError

#: YAML reads ``on``/``off`` as booleans; a choice setting takes them back as words
_BOOL_WORDS = {True: "on", False: "off"}


@dataclass(frozen=True)
class RuntimeSetting:
    """One runtime setting: ``choices`` (strings), or ``None`` for a positive integer."""

    name: str
    default: Any
    choices: tuple[str, ...] | None = None
    help: str = ""
    #: changes what the model computes (e.g. a quantized KV cache), not only how fast: the
    #: runtime's quality is scored with it, and it is part of a candidate's weights key
    affects_quality: bool = False

    def check(self, value: Any, where: str) -> Any:
        """``value`` in its canonical form; WattlmError (one line, with a hint) if invalid.
        A default of ``None`` (the runtime chooses) is accepted as itself."""
        if value is None and self.default is None:
            return None
        if self.choices is None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WattlmError(f"{where}: {self.name} must be an integer >= 1, got {value!r}")
            return value
        if isinstance(value, bool):
            value = _BOOL_WORDS[value]
        if value not in self.choices:
            raise WattlmError(
                f"{where}: {self.name}={value!r} is not a valid setting",
                hint=f"choose from: {', '.join(self.choices)}",
            )
        return value


def check_settings(
    declared: Iterable[RuntimeSetting], values: Mapping[str, Any] | None, where: str
) -> dict[str, Any]:
    """``values`` checked against ``declared``, canonical, default-valued ones dropped (a
    setting at its default is the same run as a setting left out), sorted by name.

    Example:
        >>> d = [RuntimeSetting("flash_attn", "auto", ("auto", "on", "off"))]
        >>> check_settings(d, {"flash_attn": False}, "x"), check_settings(d, {"flash_attn": "auto"}, "x")
        ({'flash_attn': 'off'}, {})
    """
    by_name = {s.name: s for s in declared}
    values = dict(values or {})
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise WattlmError(
            f"{where}: unknown runtime setting(s) {', '.join(map(str, unknown))}",
            hint=f"settings: {', '.join(by_name) or 'none'}",
        )
    out = {}
    for name in sorted(values):
        value = by_name[name].check(values[name], where)
        if value != by_name[name].default:
            out[name] = value
    return out
