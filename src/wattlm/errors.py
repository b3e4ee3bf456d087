"""The one exception type users see.

A :class:`WattlmError` is a problem with the user's input or environment (a missing file, an
unknown asset, an unreachable registry). The CLI prints it as one line and exits with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class WattlmError(Exception):
    """A user-facing error: what was wrong and what to do about it.

    Example:
        >>> err = WattlmError("batch size must be >= 1, got 0", hint="pass --batch 1,8")
        >>> str(err)
        'batch size must be >= 1, got 0 (pass --batch 1,8)'
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)

    def __reduce__(self):  # survive pickling across processes with the hint kept apart
        return (_rebuild, (type(self), self.message, self.hint))


def _rebuild(cls: type[WattlmError], message: str, hint: str | None) -> WattlmError:
    return cls(message, hint=hint)
