"""OpenVINO backend: greedy prefill/decode of the model converted to OpenVINO IR.

The IR is written by :func:`wattlm.export.openvino_export.export_openvino`: the KV-cache
step function traced by ``torch.export`` and converted by OpenVINO, with float32 weights or
weights compressed by NNCF (``BenchConfig.openvino_weights``, see :mod:`wattlm.export.openvino_weights`). The
cache stays inside OpenVINO: two infer requests take turns, each one's ``present``
outputs bound as the other's ``past`` inputs (OpenVINO tensors, never copied to numpy); only
the last position's logits are read to pick the next token.

Runtime setting ``inference_precision`` (``auto``: OpenVINO's CPU default, which is bf16
on CPUs with AVX-512 BF16 or AMX and f32 elsewhere; ``f32``; ``bf16``): what the CPU
plugin computes in. It changes the figures, so quality is scored with it, and the
precision that ran is read back from the compiled model into the result.

Quality is measured on OpenVINO itself (:meth:`OpenVinoBackend.log_probs`): one prefill
per window with an empty cache, on the IR whose logits cover every position.

Example:
    >>> with OpenVinoBackend("runs/ov/openvino_model.xml", threads=2, batch_size=8) as b:  # doctest: +SKIP
    ...     tokens = b.generate([[504, 3575, 282], [1780, 314, 260]], 8)
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wattlm._config import check_int
from wattlm.bench.backends.runtime_settings import RuntimeSetting
from wattlm.bench.backends.step_graph import StepGraphBackend
from wattlm.errors import WattlmError
from wattlm.export.openvino_weights import OpenVinoWeights

PAST = re.compile(r"past_key_values\.(\d+)\.(key|value)")
#: ``inference_precision`` -> the CPU plugin's ``INFERENCE_PRECISION_HINT`` (``auto``: unset)
PRECISIONS = {"auto": None, "f32": "f32", "bf16": "bf16"}


def _model_file(spec: str | Path) -> Path:
    from wattlm.export.openvino_export import MODEL_XML

    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / MODEL_XML
    if not path.is_file() or path.suffix != ".xml":
        raise WattlmError(
            f"OpenVINO model not found: {path}",
            hint="pass an openvino_model.xml file or the folder export_openvino wrote",
        )
    return path


def compile_model(path: Path, threads: int, precision: str) -> Any:
    """The IR at ``path`` compiled for the CPU: ``threads`` inference threads, one stream,
    latency hint, and the inference precision asked for (``auto``: the plugin's)."""
    from wattlm.export.openvino_export import import_openvino

    ov, _ = import_openvino(compress=False)
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
    }
    if PRECISIONS[precision]:
        config["INFERENCE_PRECISION_HINT"] = PRECISIONS[precision]
    try:
        return ov.Core().compile_model(str(path), "CPU", config)
    except RuntimeError as err:
        raise WattlmError(f"OpenVINO cannot load {path}: {str(err).splitlines()[0]}") from None


class OpenVinoBackend(StepGraphBackend):
    """Greedy decoding on OpenVINO's CPU plugin, cache kept as OpenVINO tensors.

    Args:
        model_xml: an ``openvino_model.xml`` file, or the folder holding it.
        threads: inference threads (one stream).
        batch_size: the most sequences per :meth:`prefill`.
        inference_precision: ``auto``, ``f32`` or ``bf16`` (see the module docstring).

    Attributes:
        last_logits: float32 ``[batch, vocab]`` logits of the last forward pass, for checks.
    """

    name = "openvino"
    requires = "openvino"
    extra = "openvino"
    isolated = True
    note = (
        "OpenVINO runs the model traced by torch.export and converted by OpenVINO's "
        "PyTorch frontend (float32, or weights compressed by NNCF per openvino_weights; KV cache "
        "kept as OpenVINO tensors); its inference precision is the CPU plugin's default "
        "unless inference_precision names one (bf16 on CPUs with AVX-512 BF16 or AMX); "
        "its perplexity is measured on OpenVINO's own logits (runtime_quality); each "
        "OpenVINO run is measured in its own process"
    )
    log_probs_method = (
        "OpenVINO logits of the converted graph (one prefill per window, empty KV cache, "
        "every position), log-softmax in float32"
    )
    #: torch-side precision stages: OpenVINO quantizes by its own weight format instead
    replaces_stages = frozenset({"cast", "int8-weight", "int4-weight", "int8-dynamic"})
    weights_format = OpenVinoWeights
    weights_field = "openvino_weights"
    default_formats = ("fp32", "int8", "int4")
    runtime_settings = (
        RuntimeSetting(
            "inference_precision", "auto", tuple(PRECISIONS), "what the CPU plugin computes in",
            affects_quality=True,
        ),
    )  # fmt: skip

    @classmethod
    def check(cls, config: Any, loaded: Any) -> None:
        if not cls.is_available():
            raise WattlmError("the openvino backend needs openvino", hint=cls.install_hint())
        if config.device != "cpu":
            raise WattlmError(
                "the openvino backend runs on the CPU plugin only",
                hint="use --device cpu, or the torch backend on a GPU",
            )
        from wattlm.export.onnx_export import linear_inputs

        weights = OpenVinoWeights.parse(config.openvino_weights)
        problem = weights.problem(linear_inputs(loaded.model))
        if problem:
            raise WattlmError(
                f"OpenVINO weights {str(weights)!r} cannot be built for {loaded.spec!r}: {problem}",
                hint="choose a group size that divides the layers' input features (e.g. -g32)",
            )
        dtypes = {str(p.dtype).removeprefix("torch.") for p in loaded.model.parameters()}
        if dtypes != {"float32"}:
            raise WattlmError(
                f"the openvino backend converts float32 models; {loaded.spec!r} has "
                f"{sorted(dtypes)} weights",
                hint="bench the float32 model (OpenVINO compresses by --openvino-weights)",
            )

    @classmethod
    def export(cls, loaded: Any, config: Any, workdir: Path) -> dict[str, Any]:
        """The model as OpenVINO IR with the weights of ``config.openvino_weights``."""
        import dataclasses

        from wattlm.export.openvino_export import export_openvino

        done = export_openvino(loaded, workdir, weights=config.openvino_weights)
        out = dataclasses.asdict(done)
        return {**out, "path": str(done.path), "all_logits_path": str(done.all_logits_path)}

    @classmethod
    def options(
        cls, loaded: Any, config: Any, batch_size: int, exported: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "model_xml": exported and exported["path"],
            "threads": config.resolved_threads,
            "batch_size": batch_size,
            **cls.runtime_of(config),
        }

    @classmethod
    @contextlib.contextmanager
    def log_probs(
        cls, loaded: Any, config: Any, exported: dict[str, Any] | None = None
    ) -> Iterator[Callable[[list[int]], Any]]:
        """OpenVINO's own next-token log-probabilities of the all-positions IR
        (``exported``; exported here into a temporary folder when ``None`` or gone)."""
        with contextlib.ExitStack() as stack:
            if exported is None or not Path(exported["all_logits_path"]).is_file():
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="wattlm-ov-"))
                exported = cls.export(loaded, config, Path(tmp))
            precision = cls.runtime_of(config).get("inference_precision", "auto")
            scorer = OpenVinoLogProbs(
                exported["all_logits_path"],
                threads=len(os.sched_getaffinity(0)),  # quality does not depend on threads
                precision=precision,
            )
            stack.callback(scorer.close)
            yield scorer

    def __init__(
        self,
        model_xml: str | Path,
        *,
        threads: int,
        batch_size: int,
        inference_precision: str = "auto",
    ) -> None:
        check_int("threads", threads)
        check_int("batch_size", batch_size)
        self.threads, self.batch_size = threads, batch_size
        self.precision = self.check_runtime({"inference_precision": inference_precision}).get(
            "inference_precision", "auto"
        )
        self.path = _model_file(model_xml)
        from wattlm.export.openvino_export import import_openvino

        self._ov, _ = import_openvino(compress=False)
        self.compiled = compile_model(self.path, threads, self.precision)
        names = [p.get_any_name() for p in self.compiled.inputs]
        self._past = [n for n in names if PAST.fullmatch(n)]
        self._present = [n.replace("past_key_values", "present") for n in self._past]
        outputs = {p.get_any_name() for p in self.compiled.outputs}
        if not self._past or not {"logits", *self._present} <= outputs:
            raise WattlmError(
                f"{self.path} is not a KV-cache decoder (no past_key_values/present pairs)",
                hint="export it with wattlm.export.openvino_export.export_openvino",
            )
        self._kv_shape = self._cache_shape()
        # two requests take turns: one's present outputs are the other's past inputs
        self._requests = [self.compiled.create_infer_request() for _ in range(2)]
        self._turn = 0
        self._reset()

    def _cache_shape(self) -> tuple[int, int]:
        shape = next(p for p in self.compiled.inputs if p.get_any_name() == self._past[0])
        dims = shape.get_partial_shape()
        if dims.rank.get_length() == 4 and dims[1].is_static and dims[3].is_static:
            return dims[1].get_length(), dims[3].get_length()
        raise WattlmError(f"cannot tell the KV cache shape of {self.path}")

    def _forward(self, ids: np.ndarray, cache: list[Any]) -> np.ndarray:
        """One forward pass; keeps the new cache in ``self._cache``, returns the logits
        (a copy: the request's output memory is reused)."""
        request = self._requests[self._turn]
        self._turn ^= 1
        ov = self._ov
        request.set_tensor("input_ids", ov.Tensor(ids))
        mask = np.ones((ids.shape[0], self._length), np.int64)
        request.set_tensor("attention_mask", ov.Tensor(mask))
        for name, value in zip(self._past, cache, strict=True):
            request.set_tensor(name, value)
        try:
            request.infer()
        except RuntimeError as err:
            message = str(err).splitlines()[0]
            raise WattlmError(f"OpenVINO failed on {self.path.name}: {message}") from None
        self._cache = [request.get_tensor(name) for name in self._present]
        return np.array(request.get_tensor("logits").data, dtype=np.float32)

    def _empty_cache(self, batch: int) -> list[Any]:
        kv_heads, head_dim = self._kv_shape
        return [
            self._ov.Tensor(np.zeros((batch, kv_heads, 0, head_dim), np.float32))
            for _ in self._past
        ]

    def window_logits(self, window: list[int]) -> np.ndarray:
        """Logits ``[len(window), vocab]`` of one sequence from an empty cache (an IR whose
        logits cover every position)."""
        ids = np.asarray([window], dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise WattlmError("window_logits needs a non-empty list of token ids")
        self._length = ids.shape[1]
        out = self._forward(ids, self._empty_cache(1))[0]
        self._cache = None
        if out.shape[0] != ids.shape[1]:
            raise WattlmError(f"{self.path.name} returns the last position's logits only")
        return out

    def describe(self) -> dict[str, Any]:
        get = self.compiled.get_property
        return {
            "name": self.name,
            "openvino": self._ov.__version__,
            "threads": self.threads,
            "inference_precision": get("INFERENCE_PRECISION_HINT").get_type_name(),
            "inference_precision_setting": self.precision,
            "streams": int(get("NUM_STREAMS")),
            "performance_hint": str(get("PERFORMANCE_HINT")),
            "device": "CPU",
            "model_file": str(self.path),
            "kv_cache": "OpenVINO tensors, two infer requests taking turns",
        }


class OpenVinoLogProbs:
    """A log-probability function (window token ids -> ``[window, vocab]`` float32 torch
    tensor) computed by OpenVINO on an all-positions IR (see
    :attr:`OpenVinoBackend.log_probs_method`).

    Example:
        >>> with OpenVinoLogProbs("runs/ov/openvino_model_all_logits.xml", threads=2) as fn:  # doctest: +SKIP
        ...     fn([1, 2, 3]).shape
        torch.Size([3, 49152])
    """

    def __init__(self, xml: str | Path, *, threads: int, precision: str = "auto") -> None:
        self._backend = OpenVinoBackend(
            xml, threads=threads, batch_size=1, inference_precision=precision
        )
        self.path = self._backend.path

    def __call__(self, window: list[int]) -> Any:
        import torch

        logits = torch.from_numpy(self._backend.window_logits(list(window)))
        return torch.log_softmax(logits, dim=-1)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> OpenVinoLogProbs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
