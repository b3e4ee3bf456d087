"""Export a causal LM to ONNX with an explicit KV cache, for the ONNX Runtime backend.

Two routes produce the same step-function contract, so the backend runs either:

- ``"builder"`` (default): onnxruntime-genai's model builder, run in a subprocess on a
  folder written by :func:`~wattlm.models.load.save_model`. It emits ONNX Runtime's fused
  contrib ops (``GroupQueryAttention``, ``SkipSimplifiedLayerNormalization``) with fp32,
  int4 or int8 (``MatMulNBits``) weights, named by an ONNX weight format (see
  :mod:`wattlm.export.onnx_weights`: block size, accuracy level, LM head and embedding
  kept float32 unless ``-qhead``). Fast, but only for architectures it knows (Llama,
  Mistral, Qwen, Phi, Gemma…) stored as plain Hugging Face weights.
- ``"torch"``: ``torch.onnx.export(dynamo=True)`` of :class:`StepModule`, plain ONNX ops.
  Any model transformers runs with a ``DynamicCache`` (compressed modules included), fp32
  only; slower to export and to run.

Contract: inputs ``input_ids`` ``[batch, seq]`` and ``attention_mask`` ``[batch, past+seq]``
(int64, all ones: no padding), ``past_key_values.{i}.key|value``
``[batch, kv_heads, past, head_dim]``; outputs ``logits`` ``[batch, 1, vocab]`` (last
position only) and ``present.{i}.key|value`` ``[batch, kv_heads, past+seq, head_dim]``.
Only the names are the contract: the builder lists all keys before all values.

For quality measured on ONNX Runtime itself, :func:`all_positions_graph` writes a copy of a
builder graph (sharing its weights file) whose ``logits`` cover every position.
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
from wattlm.export.onnx_weights import OnnxWeights
from wattlm.export.step_function import StepModule, example_inputs, io_names, logit_gap
from wattlm.models.load import LoadedModel, save_model

METHODS = ("builder", "torch")
ONNX_HINT = 'pip install "wattlm[onnx]"'


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: ``path`` is the ``model.onnx`` file, ``precision``
    the weight format's canonical name (``fp32``, ``int4-b32-acc4``…)."""

    path: Path
    method: str
    precision: str
    export_s: float
    disk_bytes: int
    max_abs_logit_diff: float


def _export_torch(model: torch.nn.Module, out: Path) -> None:
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise WattlmError(
            "the torch ONNX route exports float32 models only",
            hint="load the model with dtype float32, or use method='builder'",
        )
    args, shapes = example_inputs(model.config)
    inputs, outputs = io_names(model.config.num_hidden_layers)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter (axis renames, pytree deprecations)
        program = torch.onnx.export(
            StepModule(model).eval(), args, input_names=inputs, output_names=outputs,
            dynamic_shapes=shapes, dynamo=True, opset_version=21, verbose=False,
        )  # fmt: skip
    program.save(str(out / "model.onnx"), external_data=True)


def _export_builder(lm: LoadedModel, out: Path, weights: OnnxWeights, tmp: Path) -> None:
    save_model(lm, tmp / "hf")
    cmd = [
        sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(tmp / "hf"),
        "-o", str(out), "-p", weights.precision, "-e", "cpu", "-c", str(tmp / "cache"),
        "--extra_options", "prune_lm_head=true", *weights.builder_options(),
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
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in sess.get_inputs()]
    return logit_gap(lm, lambda feeds: sess.run(["logits"], feeds)[0], inputs, tokens)


#: the copy of a builder graph whose ``logits`` cover every position (next to ``model.onnx``)
ALL_LOGITS_FILE = "model_all_logits.onnx"
#: the two nodes onnxruntime-genai's builder inserts to keep the last position (``prune_lm_head``)
PRUNE_NODES = ("/lm_head/prune/Gather", "/lm_head/prune/Unsqueeze")


def all_positions_graph(onnx_path: str | Path) -> Path | None:
    """A graph computing what ``onnx_path`` computes, with ``logits`` for every position.

    ``onnx_path`` itself when its logits already cover every position; for a builder
    graph, whose LM head sees the last position only (``/lm_head/prune/Gather`` then
    ``Unsqueeze``), a copy without those two nodes written next to it as
    ``model_all_logits.onnx`` (a few kB: it shares ``model.onnx.data``); ``None`` when
    neither (the torch route keeps the last position inside the traced model).

    Example:
        >>> all_positions_graph("runs/onnx/model.onnx").name  # doctest: +SKIP
        'model_all_logits.onnx'
    """
    import onnx

    path = Path(onnx_path)
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    logits = next((o for o in graph.output if o.name == "logits"), None)
    if logits is None:
        raise WattlmError(f"{path} has no 'logits' output", hint="export it with export_onnx")
    nodes = {n.name: n for n in graph.node}
    if not all(name in nodes for name in PRUNE_NODES):
        dims = logits.type.tensor_type.shape.dim
        last_only = len(dims) == 3 and dims[1].HasField("dim_value") and dims[1].dim_value == 1
        return None if last_only else path
    gather, unsqueeze = (nodes[name] for name in PRUNE_NODES)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == unsqueeze.output[0]:
                node.input[i] = gather.input[0]  # the final norm's output, every position
    graph.node.remove(gather)
    graph.node.remove(unsqueeze)
    index = gather.input[1]  # the position the pruning gathered: unused now (ORT warns)
    if all(index not in node.input for node in graph.node):
        for init in [i for i in graph.initializer if i.name == index]:
            graph.initializer.remove(init)
        for node in [n for n in graph.node if n.op_type == "Constant" and index in n.output]:
            graph.node.remove(node)
    dims = logits.type.tensor_type.shape.dim
    if len(dims) == 3:
        dims[1].dim_param = "sequence_length"
    target = path.with_name(ALL_LOGITS_FILE)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    onnx.save(model, str(partial))
    os.replace(partial, target)
    return target


def linear_inputs(model: torch.nn.Module) -> dict[str, int]:
    """Input features of every ``Linear`` layer, by name (what a block size must divide)."""
    return {n: m.in_features for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def export_onnx(
    lm: LoadedModel,
    out_dir: str | Path,
    *,
    method: str = "builder",
    precision: str | OnnxWeights = "fp32",
) -> OnnxExport:
    """Export ``lm`` to ``out_dir/model.onnx`` (+ ``model.onnx.data``), checked twice.

    ``precision`` is an ONNX weight format (:mod:`wattlm.export.onnx_weights`): ``fp32``,
    or ``int4``/``int8`` with a block size and an accuracy level, e.g. ``int4-b64-acc4``
    (the builder route only); a block size that does not divide a quantized layer's input
    features is refused before any work.

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
    weights = OnnxWeights.parse(precision)
    if method == "torch" and weights.quantized:
        raise WattlmError(
            f"precision {str(weights)!r} is not available with method {method!r}",
            hint="the builder takes fp32, int4 or int8; the torch route takes fp32",
        )
    problem = weights.problem(linear_inputs(lm.model))
    if problem:
        raise WattlmError(
            f"ONNX weight format {str(weights)!r} cannot be built for {lm.spec!r}: {problem}",
            hint="choose a block size that divides the layers' input features (e.g. -b32)",
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
            _export_builder(lm, out, weights, Path(tmp))
        else:
            _export_torch(lm.model, out)
    seconds = time.perf_counter() - start
    path = out / "model.onnx"
    if method == "torch":  # the builder's graph uses contrib ops unknown to onnx.checker
        onnx.checker.check_model(str(path))
    diff, scale = compare_logits(lm, path)
    exact = not weights.quantized and next(lm.model.parameters()).dtype == torch.float32
    if exact and not diff <= 1e-4 * (1.0 + scale):
        raise WattlmError(
            f"ONNX Runtime's logits differ from torch's by {diff:.3g} (largest {scale:.3g})",
            hint="the export is wrong for this model; try the other method and report it",
        )
    size = sum(f.stat().st_size for f in out.glob("model.onnx*"))
    return OnnxExport(path, method, str(weights), seconds, size, diff)
