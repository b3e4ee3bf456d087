"""How ``wattlm serve`` runs: address, key, slots, threads, windows (a frozen dataclass).

Example:
    >>> cfg = ServeConfig(model="model.gguf", slots=4)
    >>> (cfg.host, cfg.backend, cfg.slots)
    ('127.0.0.1', 'llamacpp', 4)
    >>> ServeConfig(model="m.gguf", slots=0)
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: slots must be an integer >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattlm._config import Config, check_int
from wattlm.errors import WattlmError

BACKENDS = ("llamacpp", "torch")


@dataclass(frozen=True)
class ServeConfig(Config):
    """Settings of one server.

    Attributes:
        model: a GGUF file (llama.cpp) or a model folder / name (torch).
        backend: ``llamacpp`` or ``torch``; default from the model (``.gguf`` → llamacpp).
        host: address to bind; loopback unless the user asks otherwise.
        port: TCP port (0: any free port).
        api_key: when set, ``/v1/*`` requires ``Authorization: Bearer <key>``.
        slots: requests decoded together (llama.cpp ``--parallel``; torch batch size).
        threads: CPU threads for the engine.
        context_tokens: room per slot for prompt + generated tokens.
        max_queue: requests allowed to wait for a slot; beyond them a request gets 429.
        default_max_tokens: generated tokens when a request gives no ``max_tokens``.
        window_s: length of the energy windows (also cut whenever a request ends).
        meter: energy meter kind (``auto``, ``rapl``, ``estimate``, ``null``...).
        drain_s: seconds SIGTERM waits for in-flight requests before exiting.
        model_id: the name ``/v1/models`` reports (default: the file or folder name).
    """

    model: str
    backend: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    slots: int = 4
    threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    context_tokens: int = 2048
    max_queue: int = 64
    default_max_tokens: int = 256
    window_s: float = 0.5
    meter: str = "auto"
    drain_s: float = 30.0
    model_id: str = ""

    config_name = "serve config"

    def __post_init__(self) -> None:
        if not self.model:
            raise WattlmError("no model given", hint="pass a GGUF file, a model folder or a run")
        backend = self.backend or ("llamacpp" if self.model.endswith(".gguf") else "torch")
        if backend not in BACKENDS:
            raise WattlmError(f"unknown backend {backend!r}", hint=f"one of {', '.join(BACKENDS)}")
        object.__setattr__(self, "backend", backend)
        if not self.model_id:
            object.__setattr__(self, "model_id", Path(self.model).name or self.model)
        check_int("port", self.port, 0)
        if self.port > 65535:
            raise WattlmError(f"port must be <= 65535, got {self.port}")
        check_int("slots", self.slots, 1)
        check_int("threads", self.threads, 1)
        check_int("context_tokens", self.context_tokens, 16)
        check_int("max_queue", self.max_queue, 0)
        check_int("default_max_tokens", self.default_max_tokens, 1)
        if not self.window_s > 0:
            raise WattlmError(f"window_s must be > 0, got {self.window_s}")
        if self.drain_s < 0:
            raise WattlmError(f"drain_s must be >= 0, got {self.drain_s}")
        if self.api_key is not None and not self.api_key.strip():
            raise WattlmError("--api-key is empty", hint="give a key or leave the option out")

    @property
    def max_in_flight(self) -> int:
        """Requests admitted at once: the slots plus the queue."""
        return self.slots + self.max_queue

    def to_dict(self) -> dict[str, Any]:
        """Settings as JSON-ready data (the API key itself is never written)."""
        out = super().to_dict()
        out["api_key"] = "set" if self.api_key else None
        return out
