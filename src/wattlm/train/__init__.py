"""Training that saves energy: fine-tuning, knowledge distillation and quantization-aware
training, with efficiency options, exact resume and data parallelism, every run measured.

Three recipes on one skeleton (:func:`run_recipe`, :class:`Recipe` for a new one) and the
training engine's one loop (:mod:`wattlm.training.loop`):

- :func:`finetune` (``wattlm train finetune``): a classifier on labelled sentences or a causal
  LM on text; ``keep_sparsity`` heals a pruned model without losing its zeros;
- :func:`distill` (``wattlm train distill``): a student built from its teacher's layers
  learns from the teacher's soft targets (and hidden states);
- :func:`qat` (``wattlm train qat``): fake int8 quantization during training, then a real
  int8 model that ``wattlm bench`` can measure.

Each run writes ``model/``, ``log.jsonl`` (one line per step: loss, samples/s, tokens/s,
peak memory, joules with their source), ``config.json`` and ``result.json`` (quality before
and after, training energy in joules and gCO2e).

Example:
    >>> from wattlm.train import DataConfig, FinetuneConfig, TrainOptions, finetune
    >>> cfg = FinetuneConfig(model="minilm-l6", data=DataConfig("movie-sentiment"),
    ...                      options=TrainOptions(epochs=1, precision="bf16"))
    >>> result = finetune(cfg, "runs/teacher")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from wattlm.train.config import DistillConfig, FinetuneConfig, QatConfig, config_from_dict
    from wattlm.train.distillation import distill
    from wattlm.train.finetuning import finetune
    from wattlm.train.qat_training import qat
    from wattlm.train.recipe import Recipe, run_recipe
    from wattlm.train.student import build_student
    from wattlm.training.losses import kd_loss
    from wattlm.training.options import DataConfig, TrainOptions
    from wattlm.training.recovery import SparsityMasks

__all__ = [
    "DataConfig",
    "DistillConfig",
    "FinetuneConfig",
    "QatConfig",
    "Recipe",
    "SparsityMasks",
    "TrainOptions",
    "build_student",
    "config_from_dict",
    "distill",
    "finetune",
    "kd_loss",
    "qat",
    "run_recipe",
]

_LAZY = {
    "DataConfig": "wattlm.training.options",
    "TrainOptions": "wattlm.training.options",
    "DistillConfig": "wattlm.train.config",
    "FinetuneConfig": "wattlm.train.config",
    "QatConfig": "wattlm.train.config",
    "config_from_dict": "wattlm.train.config",
    "distill": "wattlm.train.distillation",
    "finetune": "wattlm.train.finetuning",
    "qat": "wattlm.train.qat_training",
    "kd_loss": "wattlm.training.losses",
    "SparsityMasks": "wattlm.training.recovery",
    "build_student": "wattlm.train.student",
    "Recipe": "wattlm.train.recipe",
    "run_recipe": "wattlm.train.recipe",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wattlm.train' has no attribute {name!r}")
