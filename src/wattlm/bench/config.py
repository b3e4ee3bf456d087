"""``BenchConfig``: everything that defines a benchmark run, validated on creation and saved
as ``config.json`` next to every ``result.json``."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from wattlm._config import check_keys
from wattlm.errors import WattlmError

CONFIG_VERSION = 1
METERS = ("auto", "nvml", "rapl", "estimate", "null")
BACKEND_CHOICES = ("auto", "torch", "llamacpp", "onnxruntime")
ONNX_METHODS = ("builder", "torch")


def _positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise WattlmError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how (defaults follow the measurement protocol in docs/measurement.md).

    ``backends=("auto",)`` means torch, plus llama.cpp when the model is a GGUF file and
    ``xllamacpp`` is installed; the backends actually run are listed in the result.
    ``"onnxruntime"`` exports the float32 model to ONNX with a KV cache first (by
    ``onnx_export_method``, see :func:`wattlm.export.onnx_export.export_onnx`) and runs
    that graph; the export is checked against torch's logits, so the torch perplexity
    holds for it.

    Example:
        >>> cfg = BenchConfig(batch_sizes=(1, 4))
        >>> BenchConfig.from_dict(cfg.to_dict()) == cfg
        True
        >>> BenchConfig(batch_sizes=(0,))
        Traceback (most recent call last):
        ...
        wattlm.errors.WattlmError: batch size must be an integer >= 1, got 0
    """

    model: str = "smollm2-135m"
    data: str = "wiki-sample"
    backends: tuple[str, ...] = ("auto",)
    batch_sizes: tuple[int, ...] = (1, 8)
    prompt_tokens: int = 256
    new_tokens: int = 64
    warmup: int = 1
    repeats: int = 5
    threads: int | None = None
    dtype: str = "float32"
    device: str = "cpu"
    meter: str = "auto"
    quality: bool = True
    ppl_max_length: int = 512
    ppl_stride: int = 256
    ppl_max_tokens: int = 8192
    cv_threshold: float = 0.10
    onnx_export_method: str = "builder"
    grid_intensity_g_per_kwh: float | None = None
    version: int = field(default=CONFIG_VERSION)

    def __post_init__(self) -> None:
        object.__setattr__(self, "backends", tuple(self.backends))
        object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))
        if not self.backends:
            raise WattlmError("at least one backend is needed")
        for b in self.backends:
            if b not in BACKEND_CHOICES:
                raise WattlmError(
                    f"unknown backend {b!r}", hint=f"choose from: {', '.join(BACKEND_CHOICES)}"
                )
        if self.onnx_export_method not in ONNX_METHODS:
            raise WattlmError(
                f"unknown ONNX export method {self.onnx_export_method!r}",
                hint=f"choose from: {', '.join(ONNX_METHODS)}",
            )
        if not self.batch_sizes:
            raise WattlmError("at least one batch size is needed")
        for bs in self.batch_sizes:
            _positive("batch size", bs)
        _positive("prompt length (--prompt-tokens)", self.prompt_tokens)
        _positive("new tokens (--new-tokens)", self.new_tokens, 2)
        _positive("warm-up runs", self.warmup, 0)
        _positive("repeats", self.repeats)
        if self.threads is not None:
            _positive("threads", self.threads)
        if self.meter not in METERS:
            raise WattlmError(
                f"unknown meter {self.meter!r}", hint=f"choose from: {', '.join(METERS)}"
            )
        _positive("perplexity window (--ppl-max-length)", self.ppl_max_length, 2)
        if not 0 < self.ppl_stride <= self.ppl_max_length:
            raise WattlmError(
                f"perplexity stride must be in (0, {self.ppl_max_length}], got {self.ppl_stride}"
            )
        _positive("perplexity tokens (--ppl-max-tokens)", self.ppl_max_tokens, 2)
        if not 0 < self.cv_threshold < 10:
            raise WattlmError(f"cv threshold must be a positive fraction, got {self.cv_threshold}")
        if self.grid_intensity_g_per_kwh is not None and self.grid_intensity_g_per_kwh < 0:
            raise WattlmError("grid intensity must be >= 0 gCO2e/kWh")
        if self.version > CONFIG_VERSION:
            raise WattlmError(
                f"config version {self.version} is newer than this wattlm understands ({CONFIG_VERSION})",
                hint="upgrade wattlm",
            )

    @property
    def resolved_threads(self) -> int:
        """Threads actually used: the option, else every core this process may run on."""
        return self.threads or len(os.sched_getaffinity(0))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        return cls(**check_keys(data, cls, "bench config"))

    @classmethod
    def from_json(cls, text: str) -> BenchConfig:
        return cls.from_dict(json.loads(text))
