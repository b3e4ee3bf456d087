"""``load_model``: one entry point for every model a user can bring, and ``save_model``.

Accepted specs, tried in this order:

1. an embedded asset name (``smollm2-135m``, ``minilm-l6``): fetched once, then cached;
2. a local ``.gguf`` file: validated, then loaded by transformers (``gguf_file=``), which
   dequantizes it to float; the file itself is kept for the llama.cpp backend;
3. a local Hugging Face folder (with ``config.json``);
4. a hub id (``org/name``): only when a hub is reachable.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wattlm._config import check_choice
from wattlm._files import atomic_path
from wattlm.assets.catalog import CATALOG
from wattlm.errors import WattlmError
from wattlm.export.gguf_reader import check_gguf
from wattlm.models.fingerprint import disk_bytes, parameter_count, state_dict_sha256, weight_bytes
from wattlm.models.marked import COMPRESSION_FILE, format_for, marker_of
from wattlm.models.names import DTYPE_NAMES, TASKS, torch_dtype

#: dtype name -> torch dtype
DTYPES = {name: torch_dtype(name) for name in DTYPE_NAMES}


@dataclass
class LoadedModel:
    """A model ready to run, with what is needed to describe it in a result.

    Attributes:
        model: the ``transformers`` model, in eval mode, on its device.
        tokenizer: the matching tokenizer.
        spec: what the user asked for (asset name, path or hub id).
        path: the file or folder the weights came from (``None`` for in-memory models).
        format: ``"gguf"``, ``"hf"`` or ``"memory"``.
        task: ``"causal-lm"`` or ``"sequence-classification"``.
        notes: caveats a reader of the numbers must know.
    """

    model: Any
    tokenizer: Any
    spec: str
    path: Path | None = None
    format: str = "memory"
    task: str = "causal-lm"
    notes: list[str] = field(default_factory=list)
    compression: list[dict[str, Any]] = field(default_factory=list)

    @property
    def gguf_path(self) -> Path | None:
        """The GGUF file behind this model, when it came from one."""
        return self.path if self.format == "gguf" else None

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def describe(self) -> dict[str, Any]:
        """The ``model`` section of a result (fingerprint of the weights in memory)."""
        dtype = next(self.model.parameters()).dtype
        return {
            "spec": self.spec,
            "path": str(self.path) if self.path else None,
            "format": self.format,
            "task": self.task,
            "architecture": (self.model.config.architectures or [type(self.model).__name__])[0],
            "dtype": str(dtype).removeprefix("torch."),
            "fingerprint_sha256": state_dict_sha256(self.model),
            "parameters": parameter_count(self.model),
            "weight_bytes": weight_bytes(self.model),
            "disk_bytes": disk_bytes(self.path) if self.path else None,
            "context_length": self.context_length,
        }


def _resolve(spec: str) -> tuple[Path | None, str]:
    """Map a spec to (local path, format); asset names are fetched on first use."""
    if spec in CATALOG:
        from wattlm.assets.fetch import ensure  # only for asset names

        path = ensure(spec)
        return path, "gguf" if path.suffix == ".gguf" else "hf"
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise WattlmError(f"model file not found: {path}", hint="check the path")
        return path.resolve(), "gguf"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise WattlmError(
                f"{path} is not a Hugging Face model folder (no config.json)",
                hint="pass a folder saved with save_pretrained, a .gguf file or an asset name",
            )
        return path.resolve(), "hf"
    if path.exists():
        raise WattlmError(f"unsupported model file: {path}", hint="pass a .gguf file or a folder")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return None, "hub"
    raise WattlmError(
        f"model not found: {spec!r}",
        hint="pass an asset name (see `wattlm assets list`), a .gguf file or a model folder",
    )


def _auto_class(task: str) -> Any:
    import transformers

    check_choice("task", task, TASKS)
    if task == "causal-lm":
        return transformers.AutoModelForCausalLM
    return transformers.AutoModelForSequenceClassification


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the model hub answers a TCP connection (fail fast instead of long retries)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _quiet_tqdm() -> Iterator[None]:
    """Silence the raw tqdm bar of transformers' GGUF dequantizer (wattlm shows its own)."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - other transformers layouts
        yield
        return
    original = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise WattlmError(
            f"device {device!r} requested but CUDA is not available", hint="use --device cpu"
        )
    if not (device == "cpu" or device.startswith("cuda")):
        raise WattlmError(f"unknown device {device!r}", hint="use cpu or cuda[:N]")


def load_model(
    spec: str = "smollm2-135m",
    *,
    task: str = "causal-lm",
    dtype: str = "float32",
    device: str = "cpu",
    num_labels: int | None = None,
) -> LoadedModel:
    """Load a model for inference.

    Args:
        spec: asset name, ``.gguf`` file, Hugging Face folder, or hub id.
        task: ``"causal-lm"`` or ``"sequence-classification"``.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        num_labels: classes of a new classification head (classifiers only).

    Example:
        >>> lm = load_model("smollm2-135m")  # doctest: +SKIP
        >>> lm.describe()["parameters"]  # doctest: +SKIP
        134515008
    """
    check_choice("dtype", dtype, DTYPE_NAMES)
    _check_device(device)
    auto = _auto_class(task)
    path, fmt = _resolve(spec)
    marker = marker_of(path) if fmt == "hf" else None
    if marker is not None:  # a format a higher layer owns (see wattlm.models.marked)
        loaded = format_for(marker).read(path, spec=spec, auto=auto, task=task)
        loaded.model.eval().to(device)
        return loaded
    import transformers

    transformers.utils.logging.disable_progress_bar()  # wattlm shows its own progress
    kwargs: dict[str, Any] = {"dtype": DTYPES[dtype]}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    notes: list[str] = []
    try:
        if fmt == "gguf":
            check_gguf(path)
            src, kwargs["gguf_file"] = str(path.parent), path.name
            notes.append(
                f"weights come from the GGUF file {path.name}, dequantized to {dtype} by "
                "transformers; no higher-precision original exists offline"
            )
        else:
            src = str(path) if path else spec
        if fmt == "hub" and not _hub_reachable():
            kwargs["local_files_only"] = True  # only a copy already in the local HF cache
        if fmt == "gguf":  # dequantize in float32 (transformers' GGUF path), then cast
            kwargs["dtype"] = torch.float32
        with _quiet_tqdm():  # the GGUF dequantizer draws its own raw tqdm bar
            model = auto.from_pretrained(src, **kwargs)
        model.to(DTYPES[dtype])
        tok_kwargs = {"gguf_file": kwargs["gguf_file"]} if fmt == "gguf" else {}
        tokenizer = transformers.AutoTokenizer.from_pretrained(src, **tok_kwargs)
    except WattlmError:
        raise
    except OSError as err:
        if fmt == "hub":
            raise WattlmError(
                f"could not load {spec!r} from the model hub: {err}".splitlines()[0],
                hint="no hub reachable? pass a local folder or .gguf file instead",
            ) from err
        raise WattlmError(f"could not load model from {src}: {err}".splitlines()[0]) from err
    model.eval().to(device)
    return LoadedModel(model, tokenizer, spec, path, "hub" if fmt == "hub" else fmt, task, notes)


def save_model(loaded: LoadedModel, out_dir: str | Path) -> Path:
    """Save weights (safetensors), config and tokenizer to ``out_dir`` atomically.

    A model with compression stages applied (``loaded.compression``) is saved with the
    stage list in ``wattlm_compression.json``; :func:`load_model` rebuilds its modules from
    it. Models loaded from GGUF carry a GGUF quantization config that ``save_pretrained``
    refuses; they are rebuilt from a clean config first. The folder loads back with
    :func:`load_model`.
    """
    model = loaded.model
    quant = getattr(model.config, "quantization_config", None)
    method = (
        quant.get("quant_method")
        if isinstance(quant, dict)
        else getattr(quant, "quant_method", None)
    )
    # transformers marks a GGUF-loaded model (and every copy of it) as GGUF-quantized,
    # though its weights in memory are dequantized floats
    gguf_marker = quant is not None and (
        loaded.format == "gguf" or getattr(method, "value", method) == "gguf"
    )
    config = model.config
    if gguf_marker:  # the weights in memory are plain floats: save them as such
        config = copy.deepcopy(model.config)
        del config.quantization_config
    if gguf_marker and not loaded.compression:
        auto = _auto_class(loaded.task)
        with torch.device("meta"):
            clean = auto.from_config(config, dtype=next(model.parameters()).dtype)
        clean.load_state_dict(model.state_dict(), assign=True)
        clean.tie_weights()
        model = clean
    out = Path(out_dir)
    with atomic_path(out, directory=True) as tmp:
        if loaded.compression:
            format_for(COMPRESSION_FILE).write(model, loaded.compression, tmp, config=config)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
    return out
