"""Check a request body before it reaches the engine; bad input is a 400 with a message.

Example:
    >>> parse_body("completions", b'{"prompt": "Hi", "max_tokens": 4}', default_max_tokens=16)
    {'prompt': 'Hi', 'max_tokens': 4}
    >>> parse_body("completions", b'{"prompt": ', default_max_tokens=16)
    Traceback (most recent call last):
    ...
    wattlm.serve.validate.BadRequest: the body is not valid JSON: Expecting value (line 1 column 12)
"""

from __future__ import annotations

import json
from typing import Any


class BadRequest(Exception):
    """A request the server refuses with HTTP 400 (the message says why)."""


def _int_field(body: dict[str, Any], name: str, minimum: int) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"{name} must be an integer >= {minimum}, got {value!r}")


def parse_body(kind: str, raw: bytes, *, default_max_tokens: int) -> dict[str, Any]:
    """The request as a dict, with ``max_tokens`` filled in; :class:`BadRequest` if invalid."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        msg = f"{err.msg} (line {err.lineno} column {err.colno})" if hasattr(err, "msg") else err
        raise BadRequest(f"the body is not valid JSON: {msg}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    if kind == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            body["prompt"] = prompt = prompt[0]
        if not isinstance(prompt, str) and not (
            isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt)
        ):
            raise BadRequest("prompt must be a string or a list of token ids")
    else:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m:
                raise BadRequest(f"messages[{i}] must be an object with a role")
    if "max_completion_tokens" in body and "max_tokens" not in body:
        body["max_tokens"] = body.pop("max_completion_tokens")
    _int_field(body, "max_tokens", 1)
    _int_field(body, "n", 1)
    if body.get("n", 1) != 1:
        raise BadRequest("n must be 1 (one completion per request)")
    if not isinstance(body.get("stream", False), bool):
        raise BadRequest("stream must be true or false")
    body.setdefault("max_tokens", default_max_tokens)
    return body
