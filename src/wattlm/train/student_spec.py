"""Parse a distillation student spec (``wattlm train distill --student SPEC``).

Pure text parsing, no model: recipe configs validate their ``student`` with it, and
:mod:`wattlm.train.student` builds the student it describes (the specs are listed there).

Example:
    >>> parse_student_spec("layers:0,2,4").layers
    (0, 2, 4)
    >>> parse_student_spec("runs/student").model
    'runs/student'
    >>> parse_student_spec("every:1")
    Traceback (most recent call last):
    wattlm.errors.WattlmError: every:K needs an integer K >= 2, got 'every:1' (...)
"""

from __future__ import annotations

from dataclasses import dataclass

from wattlm.errors import WattlmError

HINT = "use layers:N, layers:i,j,k, every:K, drop-layers:RATIO, config:FILE.json or a model"


@dataclass(frozen=True)
class StudentSpec:
    """A parsed ``--student`` value (exactly one field besides ``text`` is set)."""

    text: str
    count: int | None = None
    layers: tuple[int, ...] | None = None
    every: int | None = None
    drop_ratio: float | None = None
    config_file: str | None = None
    model: str | None = None


def _ints(text: str, spec: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise WattlmError(f"bad student spec {spec!r}: want integers", hint=HINT) from None


def parse_student_spec(spec: str) -> StudentSpec:
    """Parse a ``--student`` value (see the module docstring); raises on a malformed one."""
    kind, sep, value = spec.partition(":")
    if not sep or kind not in ("layers", "every", "drop-layers", "config"):
        return StudentSpec(spec, model=spec)
    if kind == "layers":
        nums = _ints(value, spec)
        if not nums or min(nums) < 0:
            raise WattlmError(f"bad student spec {spec!r}", hint=HINT)
        if "," in value:
            return StudentSpec(spec, layers=tuple(sorted(set(nums))))
        if nums[0] < 1:
            raise WattlmError(f"a student needs at least 1 layer, got {spec!r}", hint=HINT)
        return StudentSpec(spec, count=nums[0])
    if kind == "every":
        nums = _ints(value, spec)
        if len(nums) != 1 or nums[0] < 2:
            raise WattlmError(f"every:K needs an integer K >= 2, got {spec!r}", hint=HINT)
        return StudentSpec(spec, every=nums[0])
    if kind == "drop-layers":
        try:
            ratio = float(value)
        except ValueError:
            raise WattlmError(f"drop-layers needs a ratio, got {spec!r}", hint=HINT) from None
        if not 0 < ratio < 1:
            raise WattlmError(f"drop-layers ratio must be in (0, 1), got {ratio}", hint=HINT)
        return StudentSpec(spec, drop_ratio=ratio)
    return StudentSpec(spec, config_file=value)
