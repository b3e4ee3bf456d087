"""Convert a causal LM to OpenVINO IR, weights compressed by NNCF, for the OpenVINO backend.

The route: ``torch.export`` traces the KV-cache step function
(:class:`~wattlm.export.step_function.StepModule`, batch, sequence and cache length
symbolic); OpenVINO's PyTorch frontend converts the program (``openvino.convert_model``);
NNCF compresses the weights to the format asked for (:mod:`wattlm.export.openvino_weights`,
data-free); ``openvino.save_model`` writes ``openvino_model.xml`` + ``.bin`` with float
weights kept float32 (not OpenVINO's default float16 compression of the IR, which would
change what an ``fp32`` format means). Inputs and outputs carry the step function's names
(:func:`~wattlm.export.step_function.io_names`: ``input_ids``, ``attention_mask``,
``past_key_values.{i}.key|value`` in; ``logits`` of the last position and
``present.{i}.key|value`` out).

For quality measured on OpenVINO itself, a second IR, ``openvino_model_all_logits.xml``,
is the same compressed model with the LM head's last-position slice removed, so its
``logits`` cover every position (the two differ in that one node; same weights).

(onnxruntime-genai's builder graph is not a route: OpenVINO converts its
``GroupQueryAttention`` but the CPU plugin cannot run it.)

Example:
    >>> from wattlm.testing.tiny import tiny_causal_lm
    >>> done = export_openvino(tiny_causal_lm(), "/tmp/tiny-ov", weights="int8")  # doctest: +SKIP
    >>> done.path.name, done.weights  # doctest: +SKIP
    ('openvino_model.xml', 'int8-asym')
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wattlm.errors import WattlmError
from wattlm.export.openvino_weights import OpenVinoWeights
from wattlm.export.step_function import (
    StepModule,
    example_inputs,
    io_names,
    kv_shape,
    logit_gap,
)
from wattlm.models.load import LoadedModel

__all__ = ["ALL_LOGITS_XML", "MODEL_XML", "OPENVINO_HINT", "OpenVinoExport", "export_openvino"]

OPENVINO_HINT = 'pip install "wattlm[openvino]"'
MODEL_XML = "openvino_model.xml"
ALL_LOGITS_XML = "openvino_model_all_logits.xml"


@dataclass(frozen=True)
class OpenVinoExport:
    """What :func:`export_openvino` wrote: ``path`` is ``openvino_model.xml``."""

    path: Path
    all_logits_path: Path
    weights: str
    export_s: float
    disk_bytes: int
    max_abs_logit_diff: float


def import_openvino(compress: bool) -> tuple[Any, Any]:
    """``(openvino, nncf or None)``; a WattlmError naming the extra when missing."""
    try:
        import openvino as ov

        nncf = None
        if compress:
            import nncf
    except ImportError as err:
        raise WattlmError(
            f"the openvino backend needs the {err.name} package", hint=OPENVINO_HINT
        ) from None
    return ov, nncf


def export_openvino(
    lm: LoadedModel, out_dir: str | Path, *, weights: str | OpenVinoWeights = "fp32"
) -> OpenVinoExport:
    """Write ``lm`` as OpenVINO IR into ``out_dir`` (``openvino_model.xml`` and the
    all-positions copy), with the weights of ``weights``.

    The model must be float32; a group size that does not divide a 4-bit layer's input
    features is refused before any work. OpenVINO's last-position logits on a short
    prompt, computed in float32, are compared with torch's: for ``fp32`` weights, a gap
    above 1e-3 × (1 + largest logit) raises (the conversion is wrong for this model).
    Takes ~40 s for SmolLM2-135M (most of it tracing and converting).
    """
    from wattlm.export.onnx_export import linear_inputs

    fmt = OpenVinoWeights.parse(weights)
    if any(p.dtype != torch.float32 for p in lm.model.parameters()):
        raise WattlmError(
            "the OpenVINO export converts float32 models only",
            hint="load the model with dtype float32 (OpenVINO compresses by its weight format)",
        )
    problem = fmt.problem(linear_inputs(lm.model))
    if problem:
        raise WattlmError(
            f"OpenVINO weight format {str(fmt)!r} cannot be built for {lm.spec!r}: {problem}",
            hint="choose a group size that divides the layers' input features (e.g. -g32)",
        )
    ov, nncf = import_openvino(fmt.quantized)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    served = _convert(ov, lm.model)
    if fmt.quantized:
        served = _compress(nncf, served, fmt)
    every = every_position(served)
    with tempfile.TemporaryDirectory(prefix=".wattlm-ov-", dir=out) as tmp:
        for name, model in ((MODEL_XML, served), (ALL_LOGITS_XML, every)):
            ov.save_model(model, str(Path(tmp) / name), compress_to_fp16=False)
        for file in sorted(Path(tmp).iterdir()):  # complete files only reach out_dir
            shutil.move(str(file), str(out / file.name))
    seconds = time.perf_counter() - start
    path = out / MODEL_XML
    diff, scale = compare_logits(lm, path)
    if not fmt.quantized and not diff <= 1e-3 * (1.0 + scale):
        raise WattlmError(
            f"OpenVINO's logits differ from torch's by {diff:.3g} (largest {scale:.3g})",
            hint="the conversion is wrong for this model; report it",
        )
    size = sum(f.stat().st_size for f in out.glob("openvino_model.*"))
    return OpenVinoExport(path, out / ALL_LOGITS_XML, str(fmt), seconds, size, diff)


def _convert(ov: Any, model: torch.nn.Module) -> Any:
    """The step function traced by ``torch.export`` and converted, with its I/O names."""
    args, shapes = example_inputs(model.config)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter (pytree deprecations)
            program = torch.export.export(StepModule(model).eval(), args, dynamic_shapes=shapes)
            converted = ov.convert_model(program)
    except Exception as err:  # torch.export and OpenVINO raise many exception types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WattlmError(
            f"OpenVINO could not convert {type(model).__name__}: {first}",
            hint="this architecture does not trace to OpenVINO; use another backend",
        ) from None
    inputs, outputs = io_names(model.config.num_hidden_layers)
    for port, name in zip(converted.inputs, inputs, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, outputs, strict=True):
        port.get_tensor().set_names({name})
    kv_heads, head_dim = kv_shape(model.config)  # static where the model fixes them
    cache = ov.PartialShape([-1, kv_heads, -1, head_dim])
    converted.reshape({name: cache for name in inputs[2:]})
    return converted


def _compress(nncf: Any, model: Any, fmt: OpenVinoWeights) -> Any:
    """``nncf.compress_weights`` in ``fmt``, without its log table and progress bar (the
    command's own progress is what the user reads)."""
    import logging

    from nncf.common.logging.logger import nncf_logger

    options = fmt.nncf_options()
    mode = getattr(nncf.CompressWeightsMode, str(options.pop("mode")))
    level = nncf_logger.level
    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # rich's progress bar
            return nncf.compress_weights(model, mode=mode, **options)
    finally:
        nncf.set_log_level(level)


def every_position(model: Any) -> Any:
    """A copy of ``model`` whose ``logits`` cover every position: the LM head's input is
    the hidden states before the last-position ``Slice`` the step function applies."""
    copy = model.clone()
    logits = next(o for o in copy.outputs if "logits" in o.get_names())
    head = logits.get_node().input_value(0).get_node()
    cut = head.input_value(0).get_node() if head.get_type_name() == "MatMul" else None
    if cut is None or cut.get_type_name() != "Slice":
        raise WattlmError(
            "cannot find the LM head's last-position slice in the converted model",
            hint="quality on OpenVINO needs it; report the architecture",
        )
    head.input(0).replace_source_output(cut.input_value(0))
    copy.validate_nodes_and_infer_types()
    return copy


def compare_logits(lm: LoadedModel, xml: str | Path, tokens: int = 8) -> tuple[float, float]:
    """Largest |OpenVINO logit - torch logit| (OpenVINO in float32), and largest |torch
    logit|, at the last position of a fixed prompt."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    inputs = [port.get_any_name() for port in compiled.inputs]
    return logit_gap(lm, lambda feeds: compiled(feeds)["logits"], inputs, tokens)
