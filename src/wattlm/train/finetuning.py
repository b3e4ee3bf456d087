"""``finetune``: train a model on a task, measuring what the training costs.

A classifier (labelled data: ``movie-sentiment``, ``.jsonl``, ``.tsv``) trains its
sequence-classification head and body with cross-entropy; a causal LM (text: ``wiki-sample``,
``.txt``) trains on next-token prediction over fixed-length chunks of the train split.
``keep_sparsity`` holds a pruned model's zeros at zero (recovery fine-tuning).

Example:
    >>> from wattlm.train.config import FinetuneConfig
    >>> from wattlm.training.options import DataConfig, TrainOptions
    >>> cfg = FinetuneConfig(model="minilm-l6", data=DataConfig("movie-sentiment"),
    ...                      options=TrainOptions(lr=5e-5, epochs=1, batch_size=32))
    >>> result = finetune(cfg, "runs/teacher")  # doctest: +SKIP
    >>> result["quality"]["after"]["value"]  # doctest: +SKIP
    0.8...
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattlm.models.load import LoadedModel
from wattlm.train.config import FinetuneConfig
from wattlm.train.recipe import Recipe, RecipeRun, run_recipe
from wattlm.training.recovery import SparsityMasks


class Finetune(Recipe):
    """Fine-tuning's hooks: the defaults, plus pruning masks held at zero (``keep_sparsity``)."""

    config: FinetuneConfig

    def build(self, run: RecipeRun) -> LoadedModel:
        self.masks = SparsityMasks.from_zeros(run.base.model) if self.config.keep_sparsity else None
        self.sparsity_before = self.masks.sparsity() if self.masks else None
        run.after_step = self.masks.apply_ if self.masks else None
        return run.base

    def result_fields(self, run: RecipeRun) -> dict[str, Any]:
        if self.masks is None:
            return {"sparsity": None}
        return {"sparsity": {"before": self.sparsity_before, "after": self.masks.sparsity()}}


def finetune(
    config: FinetuneConfig,
    out_dir: str | Path,
    *,
    model: LoadedModel | None = None,
    resume: bool = False,
    progress: bool = True,
    meter: Any = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Fine-tune ``config.model`` (or the already loaded ``model``) and write the run to
    ``out_dir``: ``model/``, ``log.jsonl``, ``config.json``, ``result.json``.

    Returns the result (``None`` on data-parallel processes other than the first).
    """
    recipe = Finetune(config, model=model)
    return run_recipe(
        recipe, out_dir, resume=resume, progress=progress, meter=meter, on_step=on_step
    )
