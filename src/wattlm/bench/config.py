"""``BenchConfig``: everything that defines a benchmark run, validated on creation and saved
as ``config.json`` next to every ``result.json``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from wattlm._config import Config, check, check_choice, check_int, check_version
from wattlm.bench.backends import BACKEND_CHOICES, BACKEND_NAMES, backend_class
from wattlm.errors import WattlmError
from wattlm.export.onnx_weights import OnnxWeights
from wattlm.export.openvino_weights import OpenVinoWeights
from wattlm.measure import METER_KINDS
from wattlm.models.names import DTYPE_NAMES

CONFIG_VERSION = 1
ONNX_METHODS = ("builder", "torch")


@dataclass(frozen=True)
class BenchConfig(Config):
    """What to benchmark and how (defaults follow the measurement protocol in docs/measurement.md).

    ``backends=("auto",)`` means torch, plus llama.cpp when the model is a GGUF file and
    ``xllamacpp`` is installed; the backends actually run are listed in the result.
    ``"onnxruntime"`` exports the float32 model to ONNX with a KV cache first (by
    ``onnx_export_method``, see :func:`wattlm.export.onnx_export.export_onnx`) and runs
    that graph, with the weights of ``onnx_weights`` (``fp32``, or int4/int8
    ``MatMulNBits`` such as ``int4-b32-acc4``, see :mod:`wattlm.export.onnx_weights`;
    normalized to the canonical name); a float32 export is checked against torch's
    logits. ``"openvino"`` converts the float32 model to OpenVINO IR (see
    :func:`wattlm.export.openvino_export.export_openvino`), with the weights of
    ``openvino_weights`` (``fp32``, or compressed by NNCF such as ``int8-asym`` or
    ``int4-sym-g32-r100``, see :mod:`wattlm.export.openvino_weights`). ``runtime`` holds
    runtime settings of the backends that declare some (e.g.
    llama.cpp's ``{"flash_attn": "on", "kv_cache": "q8_0"}``, see
    :attr:`~wattlm.bench.backends.base.Backend.runtime_settings`); a setting left out, or at
    its default, is the runtime's default.

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
    onnx_weights: str = "fp32"
    openvino_weights: str = "fp32"
    runtime: dict[str, Any] = field(default_factory=dict, hash=False)
    grid_intensity_g_per_kwh: float | None = None
    version: int = field(default=CONFIG_VERSION)

    config_name = "bench config"

    def __post_init__(self) -> None:
        object.__setattr__(self, "backends", tuple(self.backends))
        object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))
        check(bool(self.backends), "at least one backend is needed")
        for b in self.backends:
            check_choice("backend", b, BACKEND_CHOICES)
        check_choice("ONNX export method", self.onnx_export_method, ONNX_METHODS)
        object.__setattr__(self, "onnx_weights", str(OnnxWeights.parse(self.onnx_weights)))
        weights = str(OpenVinoWeights.parse(self.openvino_weights))
        object.__setattr__(self, "openvino_weights", weights)
        object.__setattr__(self, "runtime", _runtime(self.backends, self.runtime))
        check_choice("dtype", self.dtype, DTYPE_NAMES)
        check(bool(self.batch_sizes), "at least one batch size is needed")
        for bs in self.batch_sizes:
            check_int("batch size", bs)
        check_int("prompt length (--prompt-tokens)", self.prompt_tokens)
        check_int("new tokens (--new-tokens)", self.new_tokens, 2)
        check_int("warm-up runs", self.warmup, 0)
        check_int("repeats", self.repeats)
        if self.threads is not None:
            check_int("threads", self.threads)
        check_choice("meter", self.meter, METER_KINDS)
        check_int("perplexity window (--ppl-max-length)", self.ppl_max_length, 2)
        check(
            0 < self.ppl_stride <= self.ppl_max_length,
            f"perplexity stride must be in (0, {self.ppl_max_length}], got {self.ppl_stride}",
        )
        check_int("perplexity tokens (--ppl-max-tokens)", self.ppl_max_tokens, 2)
        check(
            0 < self.cv_threshold < 10,
            f"cv threshold must be a positive fraction, got {self.cv_threshold}",
        )
        check(
            self.grid_intensity_g_per_kwh is None or self.grid_intensity_g_per_kwh >= 0,
            "grid intensity must be >= 0 gCO2e/kWh",
        )
        check_version(self.version, CONFIG_VERSION, "bench config")

    @property
    def resolved_threads(self) -> int:
        """Threads actually used: the option, else every core this process may run on."""
        return self.threads or len(os.sched_getaffinity(0))


def _runtime(backends: tuple[str, ...], settings: Any) -> dict[str, Any]:
    """Runtime settings checked by every named backend that declares some (``auto``: any
    backend may run); an error if none of them takes runtime settings."""
    if not settings:
        return {}
    if not isinstance(settings, dict):
        raise WattlmError(f"runtime settings must be a mapping, got {settings!r}")
    names = BACKEND_NAMES if "auto" in backends else backends
    takers = [backend_class(b) for b in names if backend_class(b).runtime_settings]
    if not takers:
        raise WattlmError(
            f"runtime settings {sorted(settings)} given, but backend(s) {', '.join(backends)} "
            "take none",
            hint="drop them, or run a backend that has runtime settings (llamacpp)",
        )
    known = {s.name for cls in takers for s in cls.runtime_settings}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise WattlmError(
            f"runtime settings of backend(s) {', '.join(backends)}: unknown runtime "
            f"setting(s) {', '.join(map(str, unknown))}",
            hint=f"settings: {', '.join(sorted(known))}",
        )
    checked = {}
    for cls in takers:  # each backend checks its own
        own = {s.name for s in cls.runtime_settings}
        mine = {k: v for k, v in settings.items() if k in own}
        checked.update(cls.check_runtime(mine, f"runtime settings of the {cls.name} backend"))
    checked = dict(sorted(checked.items()))
    return checked
