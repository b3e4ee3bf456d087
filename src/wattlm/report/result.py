"""Load and validate ``result.json`` files against the result schema.

The schema (``schema.json`` beside this module, JSON Schema draft 2020-12) is the contract
between the commands that write results (``wattlm bench``, ``wattlm measure``) and everything
that reads them. Every field is described in ``docs/result-format.md``.

Example:
    >>> from wattlm.testing.results import sample_bench_result
    >>> validate_result(sample_bench_result())  # returns None when the result is valid
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from wattlm.errors import WattlmError

SCHEMA_VERSION = 2  # 2: both energy views (total, marginal); 1 still reads
RESULT_FILE = "result.json"

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def load_schema() -> dict[str, Any]:
    """Return the result schema as a fresh dict (safe to modify).

    Example:
        >>> load_schema()["$defs"]["stat"]["type"]
        'object'
    """
    text = resources.files("wattlm.report").joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema())


def _json_type(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _JSON_TYPES[type(value)]
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _describe(err: Any) -> str:
    """One readable line saying what the schema expected at the failing place."""
    if err.validator == "type":
        expected = err.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"expected {expected}, got {_json_type(err.instance)}"
    if err.validator == "not" and err.validator_value == {}:  # $defs/forbidden
        return f"{err.path[-1]!r} is not allowed here" if err.path else "not allowed here"
    message = err.message
    return message if len(message) <= 160 else message[:157] + "..."


def validate_result(obj: Any, *, source: str = "result") -> None:
    """Check ``obj`` against the result schema; raise :class:`WattlmError` on the first error.

    The message names the JSON path of the error and what was expected there; ``source``
    (e.g. the file name) starts the message. A ``schema_version`` newer than
    :data:`SCHEMA_VERSION` asks the user to upgrade wattlm.

    Example:
        >>> from wattlm.testing.results import sample_bench_result
        >>> bad = sample_bench_result()
        >>> bad["runs"][0]["batch_size"] = "8"
        >>> validate_result(bad)
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: result is invalid at $.runs[0].batch_size: expected integer, got string
    """
    if not isinstance(obj, dict):
        raise WattlmError(f"{source} is invalid: expected a JSON object, got {_json_type(obj)}")
    version = obj.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise WattlmError(
            f"{source} has schema_version {version}, newer than this wattlm reads "
            f"({SCHEMA_VERSION})",
            hint="upgrade wattlm: pip install -U wattlm",
        )
    from jsonschema.exceptions import best_match

    err = best_match(_validator().iter_errors(obj))
    if err is not None:
        raise WattlmError(f"{source} is invalid at {err.json_path}: {_describe(err)}")


def result_file(path: str | os.PathLike[str]) -> Path:
    """The ``result.json`` that ``path`` names: the file itself, or the one inside a folder."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
        if not path.is_file():
            raise WattlmError(f"no {RESULT_FILE} in {path.parent}", hint="pass a run folder")
    elif not path.exists():
        raise WattlmError(f"{path} does not exist")
    return path


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a result: a ``result.json`` file or a run folder containing one.

    Example:
        >>> import json, tempfile, pathlib
        >>> from wattlm.testing.results import sample_measure_result
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (run / "result.json").write_text(json.dumps(sample_measure_result()))
        >>> load_result(run)["kind"]
        'measure'
    """
    file = result_file(path)
    try:
        obj = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise WattlmError(
            f"{file} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise WattlmError(f"cannot read {file}: {err}") from None
    validate_result(obj, source=str(file))
    return obj
