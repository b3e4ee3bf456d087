"""Export a causal LM to ONNX with an explicit KV cache, for the ONNX Runtime backend.

Two routes produce the same step-function contract, so the backend runs either:

- ``"builder"`` (default): onnxruntime-genai's model builder, run in a subprocess on a
  folder written by :func:`~wattlm.models.load.save_model`. It emits ONNX Runtime's fused
  contrib ops (``GroupQueryAttention``, ``SkipSimplifiedLayerNormalization``) with fp32 or
  int4 (``MatMulNBits``) weights. Fast, but only for architectures it knows (Llama,
  Mistral, Qwen, Phi, Gemma…) stored as plain Hugging Face weights.
- ``"torch"``: ``torch.onnx.export(dynamo=True)`` of :class:`StepModule`, plain ONNX ops.
  Any model transformers runs with a ``DynamicCache`` (compressed modules included), fp32
  only; slower to export and to run.

Contract: inputs ``input_ids`` ``[batch, seq]`` and ``attention_mask`` ``[batch, past+seq]``
(int64, all ones: no padding), ``past_key_values.{i}.key|value``
``[batch, kv_heads, past, head_dim]``; outputs ``logits`` ``[batch, 1, vocab]`` (last
position only) and ``present.{i}.key|value`` ``[batch, kv_heads, past+seq, head_dim]``.
Only the names are the contract: the builder lists all keys before all values.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from wattlm.errors import WattlmError
from wattlm.models.load import LoadedModel, save_model

METHODS = ("builder", "torch")
PRECISIONS = ("fp32", "int4")
ONNX_HINT = 'pip install "wattlm[onnx]"'


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: ``path`` is the ``model.onnx`` file."""

    path: Path
    method: str
    precision: str
    export_s: float
    disk_bytes: int
    max_abs_logit_diff: float


class StepModule(torch.nn.Module):
    """One forward step with the KV cache as flat tensors: ``(ids, mask, *past) ->
    (logits, *present)``, past/present ordered layer 0 key, layer 0 value, layer 1 key…"""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, *past):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i in range(len(past) // 2):
            cache.update(past[2 * i], past[2 * i + 1], i)
        start = past[0].shape[2]
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=positions.unsqueeze(0).expand(input_ids.shape[0], -1),
            use_cache=True,
            logits_to_keep=1,
        )
        flat = [t for layer in out.cache.layers for t in (layer.keys, layer.values)]
        return (out.logits, *flat)


def io_names(layers: int) -> tuple[list[str], list[str]]:
    """Input and output names of the step function of a ``layers``-layer model."""
    kv = [(i, k) for i in range(layers) for k in ("key", "value")]
    inputs = ["input_ids", "attention_mask"] + [f"past_key_values.{i}.{k}" for i, k in kv]
    return inputs, ["logits"] + [f"present.{i}.{k}" for i, k in kv]


def _kv_shape(config) -> tuple[int, int]:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return getattr(config, "num_key_value_heads", None) or heads, head_dim


def _export_torch(model: torch.nn.Module, out: Path) -> None:
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise WattlmError(
            "the torch ONNX route exports float32 models only",
            hint="load the model with dtype float32, or use method='builder'",
        )
    layers = model.config.num_hidden_layers
    kv_heads, head_dim = _kv_shape(model.config)
    batch, past = 2, 3  # example sizes above 1, so export keeps them symbolic
    args = (
        torch.ones(batch, 5, dtype=torch.long),
        torch.ones(batch, past + 5, dtype=torch.long),
        *[torch.zeros(batch, kv_heads, past, head_dim) for _ in range(2 * layers)],
    )
    b, s, p = (torch.export.Dim(n) for n in ("batch", "sequence", "past_sequence"))
    shapes = {
        "input_ids": {0: b, 1: s},
        "attention_mask": {0: b, 1: torch.export.Dim.AUTO},
        "past": tuple({0: b, 2: p} for _ in range(2 * layers)),
    }
    inputs, outputs = io_names(layers)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter (axis renames, pytree deprecations)
        program = torch.onnx.export(
            StepModule(model).eval(), args, input_names=inputs, output_names=outputs,
            dynamic_shapes=shapes, dynamo=True, opset_version=21, verbose=False,
        )  # fmt: skip
    program.save(str(out / "model.onnx"), external_data=True)


def _export_builder(lm: LoadedModel, out: Path, precision: str, tmp: Path) -> None:
    save_model(lm, tmp / "hf")
    cmd = [
        sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(tmp / "hf"),
        "-o", str(out), "-p", precision, "-e", "cpu", "-c", str(tmp / "cache"),
        "--extra_options", "prune_lm_head=true",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0 or not (out / "model.onnx").is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise WattlmError(
            f"onnxruntime-genai's model builder failed: {' | '.join(tail)}",
            hint="the builder knows only some architectures; try method='torch'",
        )


def compare_logits(lm: LoadedModel, onnx_path: str | Path, tokens: int = 8) -> tuple[float, float]:
    """Largest |ORT logit - torch logit|, and largest |torch logit|, at the last position
    of a fixed prompt."""
    import numpy as np
    import onnxruntime as ort

    config = lm.model.config
    ids = (torch.arange(tokens) * 7 + 3) % config.vocab_size
    with torch.no_grad():
        ref = lm.model(ids[None].to(lm.model.device)).logits[0, -1].float().cpu().numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    kv_heads, head_dim = _kv_shape(config)
    feeds = {"input_ids": ids[None].numpy(), "attention_mask": np.ones((1, tokens), np.int64)}
    for inp in sess.get_inputs():
        if inp.name.startswith("past_key_values."):
            feeds[inp.name] = np.zeros((1, kv_heads, 0, head_dim), np.float32)
    got = sess.run(["logits"], feeds)[0][0, -1]
    return float(np.abs(got - ref).max()), float(np.abs(ref).max())


def export_onnx(
    lm: LoadedModel, out_dir: str | Path, *, method: str = "builder", precision: str = "fp32"
) -> OnnxExport:
    """Export ``lm`` to ``out_dir/model.onnx`` (+ ``model.onnx.data``), checked twice.

    ``onnx.checker`` validates a torch-route graph (the builder's uses ONNX Runtime contrib
    ops the checker does not know; ONNX Runtime's loader validates those), then ONNX
    Runtime's last-position logits on a short prompt are compared with torch's: for an fp32
    export of a float32 model, a gap above 1e-4 × (1 + largest logit) raises. Takes ~20 s
    for SmolLM2-135M with the builder, ~3 min with the torch route.

    Example:
        >>> from wattlm.testing.tiny import tiny_causal_lm
        >>> done = export_onnx(tiny_causal_lm(), "/tmp/tiny-onnx")  # doctest: +SKIP
        >>> done.max_abs_logit_diff < 1e-4  # doctest: +SKIP
        True
    """
    if method not in METHODS:
        raise WattlmError(f"unknown ONNX export method {method!r}", hint=f"choose from {METHODS}")
    if precision not in PRECISIONS or (method == "torch" and precision != "fp32"):
        raise WattlmError(
            f"precision {precision!r} is not available with method {method!r}",
            hint="the builder takes fp32 or int4; the torch route takes fp32",
        )
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise WattlmError(f"ONNX export needs {err.name}", hint=ONNX_HINT) from err
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wattlm-onnx-") as tmp:
        if method == "builder":
            _export_builder(lm, out, precision, Path(tmp))
        else:
            _export_torch(lm.model, out)
    seconds = time.perf_counter() - start
    path = out / "model.onnx"
    if method == "torch":  # the builder's graph uses contrib ops unknown to onnx.checker
        onnx.checker.check_model(str(path))
    diff, scale = compare_logits(lm, path)
    exact = precision == "fp32" and next(lm.model.parameters()).dtype == torch.float32
    if exact and not diff <= 1e-4 * (1.0 + scale):
        raise WattlmError(
            f"ONNX Runtime's logits differ from torch's by {diff:.3g} (largest {scale:.3g})",
            hint="the export is wrong for this model; try the other method and report it",
        )
    size = sum(f.stat().st_size for f in out.glob("model.onnx*"))
    return OnnxExport(path, method, precision, seconds, size, diff)
