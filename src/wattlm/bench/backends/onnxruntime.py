"""ONNX Runtime backend: greedy prefill/decode of a KV-cache ONNX graph.

The graph is the step function written by :func:`wattlm.export.onnx_export.export_onnx`
(either route) or by onnxruntime-genai's model builder, with float32 or int4/int8
``MatMulNBits`` weights (``BenchConfig.onnx_weights``, see
:mod:`wattlm.export.onnx_weights`): ``input_ids``, ``attention_mask``
and ``past_key_values.{i}.key|value`` in; ``logits`` and ``present.{i}.key|value`` out.
The cache stays inside ONNX Runtime: each step's ``present`` outputs are ``OrtValue``
objects bound (IO binding) as the next step's ``past`` inputs, never copied to numpy; only
the last position's logits come back to pick the next token.

Quality is measured on ONNX Runtime itself (:meth:`OnnxRuntimeBackend.log_probs`): one
prefill per window with an empty cache, on a copy of the graph whose logits cover every
position (:func:`~wattlm.export.onnx_export.all_positions_graph`).

Example:
    >>> with OnnxRuntimeBackend("runs/onnx", threads=2, batch_size=8) as backend:  # doctest: +SKIP
    ...     tokens = backend.generate([[504, 3575, 282], [1780, 314, 260]], 8)
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wattlm._config import check_int
from wattlm.bench.backends.step_graph import StepGraphBackend
from wattlm.errors import WattlmError
from wattlm.export.onnx_weights import OnnxWeights

PAST = re.compile(r"past_key_values\.(\d+)\.(key|value)")
ONNX_HINT = 'pip install "wattlm[onnx]"'


def _positive(name: str, value: Any, minimum: int = 1) -> int:
    check_int(name, value, minimum)
    return value


def _model_file(spec: str | Path) -> Path:
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file() or path.suffix != ".onnx":
        raise WattlmError(
            f"ONNX model not found: {path}",
            hint="pass a model.onnx file or the folder export_onnx wrote",
        )
    return path


class OnnxRuntimeBackend(StepGraphBackend):
    """Greedy decoding on ONNX Runtime's CPU provider, cache kept as ``OrtValue`` objects.

    Args:
        onnx_path_or_folder: a ``.onnx`` file, or a folder holding ``model.onnx``.
        threads: intra-op threads (one inter-op thread, sequential execution).
        batch_size: the most sequences per :meth:`prefill`.

    Attributes:
        last_logits: float32 ``[batch, vocab]`` logits of the last forward pass, for checks.
    """

    name = "onnxruntime"
    requires = "onnxruntime"
    extra = "onnx"
    isolated = True
    note = (
        "ONNX Runtime runs an ONNX export of the model (float32, or int4/int8 MatMulNBits "
        "weights by onnx_weights; KV cache kept in ONNX Runtime); a float32 export's logits "
        "were checked against torch's (within 1e-4); its perplexity is measured on ONNX "
        "Runtime's own logits (runtime_quality), beside torch's on the float weights "
        "(quality); each ONNX Runtime run is measured in its own process"
    )
    log_probs_method = (
        "ONNX Runtime logits of the exported graph (one prefill per window, empty KV "
        "cache, every position), log-softmax in float32"
    )
    #: torch-side precision stages: ONNX Runtime quantizes by its own weight format instead
    replaces_stages = frozenset({"cast", "int8-weight", "int4-weight", "int8-dynamic"})
    weights_format = OnnxWeights
    weights_field = "onnx_weights"
    default_formats = ("fp32", "int4", "int8")

    @classmethod
    def check(cls, config: Any, loaded: Any) -> None:
        if not cls.is_available():
            raise WattlmError("the onnxruntime backend needs onnxruntime", hint=cls.install_hint())
        if config.device != "cpu":
            raise WattlmError(
                "the onnxruntime backend runs on the CPU provider only",
                hint="use --device cpu, or the torch backend on a GPU",
            )
        weights = OnnxWeights.parse(config.onnx_weights)
        if weights.quantized and config.onnx_export_method != "builder":
            raise WattlmError(
                f"ONNX weights {str(weights)!r} are written by the builder route only",
                hint="use --onnx-export-method builder, or --onnx-weights fp32",
            )
        from wattlm.export.onnx_export import linear_inputs

        problem = weights.problem(linear_inputs(loaded.model))
        if problem:
            raise WattlmError(
                f"ONNX weights {str(weights)!r} cannot be built for {loaded.spec!r}: {problem}",
                hint="choose a block size that divides the layers' input features (e.g. -b32)",
            )
        dtypes = {str(p.dtype).removeprefix("torch.") for p in loaded.model.parameters()}
        if dtypes != {"float32"}:
            raise WattlmError(
                f"the onnxruntime backend runs float32 exports; {loaded.spec!r} has "
                f"{sorted(dtypes)} weights",
                hint="bench the float32 model (ONNX Runtime quantizes by --onnx-weights)",
            )

    @classmethod
    def export(cls, loaded: Any, config: Any, workdir: Path) -> dict[str, Any]:
        """An ONNX export with a KV cache (by ``config.onnx_export_method``, with the
        weights of ``config.onnx_weights``)."""
        import dataclasses

        from wattlm.export.onnx_export import export_onnx

        done = export_onnx(
            loaded, workdir, method=config.onnx_export_method, precision=config.onnx_weights
        )
        return {**dataclasses.asdict(done), "path": str(done.path)}

    @classmethod
    def options(
        cls, loaded: Any, config: Any, batch_size: int, exported: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "onnx_path_or_folder": exported and exported["path"],
            "threads": config.resolved_threads,
            "batch_size": batch_size,
        }

    @classmethod
    @contextlib.contextmanager
    def log_probs(
        cls, loaded: Any, config: Any, exported: dict[str, Any] | None = None
    ) -> Iterator[Callable[[list[int]], Any]]:
        """ONNX Runtime's own next-token log-probabilities of the exported graph
        (``exported``; exported here into a temporary folder when ``None`` or gone)."""
        with contextlib.ExitStack() as stack:
            if exported is None or not Path(exported["path"]).is_file():
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="wattlm-onnx-"))
                exported = cls.export(loaded, config, Path(tmp))
            scorer = OnnxLogProbs(exported["path"], threads=config.resolved_threads)
            stack.callback(scorer.close)
            yield scorer

    def __init__(self, onnx_path_or_folder: str | Path, *, threads: int, batch_size: int):
        self.threads = _positive("threads", threads)
        self.batch_size = _positive("batch_size", batch_size)
        self.path = _model_file(onnx_path_or_folder)
        try:
            import onnxruntime as ort
            from onnxruntime.capi import onnxruntime_pybind11_state as state
        except ImportError as err:
            raise WattlmError("the onnxruntime backend needs onnxruntime", hint=ONNX_HINT) from err
        self._ort = ort
        self._errors = (RuntimeError, *(v for v in vars(state).values() if _is_error(v)))
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except self._errors as err:
            raise WattlmError(f"ONNX Runtime cannot load {self.path}: {err}") from err
        past = [i for i in self.session.get_inputs() if PAST.fullmatch(i.name)]
        self._past = [i.name for i in past]
        self._present = [n.replace("past_key_values", "present") for n in self._past]
        outputs = {o.name for o in self.session.get_outputs()}
        if not past or not {"logits", *self._present} <= outputs:
            raise WattlmError(
                f"{self.path} is not a KV-cache decoder (no past_key_values/present pairs)",
                hint="export it with wattlm.export.onnx_export.export_onnx",
            )
        self._kv_shape = self._cache_shape(past[0].shape)
        self._kv_dtype = np.float16 if past[0].type == "tensor(float16)" else np.float32
        self._reset()

    def _cache_shape(self, shape: list[Any]) -> tuple[int, int]:
        """(kv heads, head dim): from the graph, else from the builder's genai_config.json."""
        if isinstance(shape[1], int) and isinstance(shape[3], int):
            return shape[1], shape[3]
        config = self.path.parent / "genai_config.json"
        if config.is_file():
            decoder = json.loads(config.read_text())["model"]["decoder"]
            return decoder["num_key_value_heads"], decoder["head_size"]
        raise WattlmError(f"cannot tell the KV cache shape of {self.path}")

    def _forward(self, ids: np.ndarray, cache: list[Any]) -> np.ndarray:
        """One forward pass; keeps the new cache in ``self._cache``, returns the logits."""
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", np.ones((ids.shape[0], self._length), np.int64))
        for name, value in zip(self._past, cache, strict=True):
            binding.bind_ortvalue_input(name, value)
        for name in ["logits", *self._present]:
            binding.bind_output(name, "cpu")
        try:
            self.session.run_with_iobinding(binding)
        except self._errors as err:
            raise WattlmError(f"ONNX Runtime failed on {self.path.name}: {err}") from err
        logits, *self._cache = binding.get_outputs()
        return logits.numpy()

    def _empty_cache(self, batch: int) -> list[Any]:
        kv_heads, head_dim = self._kv_shape
        empty = np.zeros((batch, kv_heads, 0, head_dim), self._kv_dtype)
        return [self._ort.OrtValue.ortvalue_from_numpy(empty)] * len(self._past)

    @property
    def all_positions(self) -> bool:
        """Whether a prefill returns the logits of every position (not only the last)."""
        logits = next(o for o in self.session.get_outputs() if o.name == "logits")
        return len(logits.shape) == 3 and not isinstance(logits.shape[1], int)

    def window_logits(self, window: list[int]) -> np.ndarray:
        """Logits ``[len(window), vocab]`` of one sequence from an empty cache: one prefill
        when the graph returns every position, else one token per forward pass."""
        ids = np.asarray([window], dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise WattlmError("window_logits needs a non-empty list of token ids")
        if self.all_positions:
            self._length = ids.shape[1]
            out = self._forward(ids, self._empty_cache(1))[0]
        else:
            rows, cache = [], self._empty_cache(1)
            for k in range(ids.shape[1]):
                self._length = k + 1
                rows.append(self._forward(ids[:, k : k + 1], cache)[0, -1])
                cache = self._cache
            out = np.stack(rows)
        self._cache = None
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "onnxruntime": self._ort.__version__,
            "threads": self.threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "provider": "CPUExecutionProvider",
            "model_file": str(self.path),
            "kv_cache": "OrtValue io-binding",
        }


class OnnxLogProbs:
    """A log-probability function (window token ids -> ``[window, vocab]`` float32 torch
    tensor) computed by ONNX Runtime on an exported graph (see
    :attr:`OnnxRuntimeBackend.log_probs_method`).

    Example:
        >>> with OnnxLogProbs("runs/onnx/model.onnx", threads=2) as fn:  # doctest: +SKIP
        ...     fn([1, 2, 3]).shape
        torch.Size([3, 49152])
    """

    def __init__(self, onnx_path: str | Path, *, threads: int) -> None:
        from wattlm.export.onnx_export import all_positions_graph

        path = _model_file(onnx_path)
        self.path = all_positions_graph(path) or path
        self._backend = OnnxRuntimeBackend(self.path, threads=threads, batch_size=1)

    def __call__(self, window: list[int]) -> Any:
        import torch

        logits = torch.from_numpy(self._backend.window_logits(list(window)))
        return torch.log_softmax(logits.float(), dim=-1)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> OnnxLogProbs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_error(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, Exception)
