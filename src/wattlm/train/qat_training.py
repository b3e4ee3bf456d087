"""``qat``: quantization-aware training, then conversion to a really quantized model.

1. measure the float model, and the same model quantized without training (post-training
   quantization with ``wattlm compress``'s method of the same name: the baseline QAT must
   beat);
2. fake-quantize every Linear not in ``skip`` (:mod:`wattlm.train.fakequant`) and train
   on the task with the shared loop;
3. convert: the fake-quantized layers become compress's int8 modules (int8 ``qweight`` +
   per-channel ``scale`` buffers), recorded as a compression stage, so the saved folder
   loads with ``load_model`` and ``wattlm bench`` measures the real int8 kernels.

Example:
    >>> from wattlm.train.config import QatConfig
    >>> result = qat(QatConfig(model="runs/student", scheme="int8"), "runs/student-qat")  # doctest: +SKIP
    >>> result["quality"]["ptq"]["value"] <= result["quality"]["after"]["value"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from wattlm.compress import compress_
from wattlm.compress.qlinear import Int8DynamicLinear, Int8WeightLinear
from wattlm.compress.qlinear_int4 import Int4WeightLinear
from wattlm.compress.quantize import Int8DynamicConfig, Int8WeightConfig
from wattlm.compress.quantize_swap import linear_modules
from wattlm.errors import WattlmError
from wattlm.models.load import LoadedModel
from wattlm.train.config import QatConfig
from wattlm.train.fakequant import convert_qat_, prepare_qat_, resolve_backend
from wattlm.train.recipe import Recipe, RecipeRun, run_recipe
from wattlm.training.evaluate import evaluate

#: QAT scheme -> the compress method whose modules and restorer the result uses
COMPRESS_METHOD = {"int8": "int8-weight", "int8-dynamic": "int8-dynamic"}


def stage_config(config: QatConfig):
    """The compress config describing the converted model (its restorer rebuilds it)."""
    cls = Int8DynamicConfig if config.scheme == "int8-dynamic" else Int8WeightConfig
    return cls(skip=config.skip)


def qat_targets(model, skip: tuple[str, ...]) -> list[str]:
    """Names of the Linear layers QAT quantizes (the same set compress's restorer swaps)."""
    if any(
        isinstance(m, (Int8WeightLinear, Int8DynamicLinear, Int4WeightLinear))
        for m in model.modules()
    ):
        raise WattlmError(
            "the model is already quantized; QAT starts from a float model",
            hint="pass the model from before quantization",
        )
    targets = sorted(linear_modules(model, skip=skip))
    if not targets:
        raise WattlmError(f"no Linear layer left to quantize (skip={list(skip)})")
    return targets


def _ptq_quality(lm: LoadedModel, config: QatConfig, eval_set) -> dict[str, Any]:
    copy_lm = copy.copy(lm)
    copy_lm.model = copy.deepcopy(lm.model)
    compress_(copy_lm.model, stage_config(config))
    return evaluate(copy_lm, eval_set)


class Qat(Recipe):
    """QAT's hooks: quality of plain post-training quantization before training, fake
    quantization of the targets for training, and conversion to int8 modules after."""

    config: QatConfig

    def check(self, run: RecipeRun) -> None:
        self.backend = resolve_backend(self.config.backend)

    def build(self, run: RecipeRun) -> LoadedModel:
        self.targets = qat_targets(run.base.model, self.config.skip)
        return run.base

    def evaluate_before(self, run: RecipeRun) -> dict[str, Any]:
        quality = super().evaluate_before(run)
        quality["ptq"] = _ptq_quality(run.model, self.config, run.eval_set)
        return quality

    def loss_module(self, run: RecipeRun) -> torch.nn.Module:
        config = self.config
        prepare_qat_(run.model.model, self.targets, scheme=config.scheme, backend=self.backend)
        return super().loss_module(run)

    def after_training(self, run: RecipeRun) -> None:
        config, lm = self.config, run.model
        self.converted = convert_qat_(
            lm.model, self.targets, scheme=config.scheme, backend=self.backend
        )
        stage = stage_config(config)
        lm.compression = [
            *lm.compression,
            {
                "method": stage.method,
                "config": stage.to_dict(),
                "layers_quantized": self.converted,
                "qat": {
                    "scheme": config.scheme,
                    "backend": self.backend,
                    "grid": "int8 symmetric per channel, scale = max|w| / 127.5",
                },
            },
        ]

    def result_fields(self, run: RecipeRun) -> dict[str, Any]:
        note = f"QAT ({self.backend} fake quantization), converted to {self.converted} int8 layers"
        return {"notes": [note]}


def qat(
    config: QatConfig,
    out_dir: str | Path,
    *,
    model: LoadedModel | None = None,
    resume: bool = False,
    progress: bool = True,
    meter: Any = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Quantization-aware training of ``config.model`` (or ``model``), converted to int8
    and written to ``out_dir``. Returns the result (``None`` on processes other than the
    first)."""
    recipe = Qat(config, model=model)
    return run_recipe(
        recipe, out_dir, resume=resume, progress=progress, meter=meter, on_step=on_step
    )
