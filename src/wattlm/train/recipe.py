"""The one skeleton every training recipe runs (:func:`run_recipe`), and the hooks a recipe
fills in (:class:`Recipe`).

The skeleton owns everything the recipes share, in this order:

1. data-parallel set-up, the run folder (checked before anyone writes), the environment
   check and the thread count;
2. the recipe's own quick checks (:meth:`Recipe.check`), the task (from the config, the
   given model or the data), the model (:meth:`Recipe.load`), the training data, its label
   count against the model, the model that is trained (:meth:`Recipe.build`) and the
   evaluation set: every check before any training;
3. quality before training (:meth:`Recipe.evaluate_before`, first process only), the loss
   module (:meth:`Recipe.loss_module`), what a checkpoint must match, and the checkpoint to
   resume from;
4. the training loop (:func:`wattlm.training.loop.train_loop`);
5. on the first process: the recipe's last change to the model (:meth:`Recipe.after_training`),
   quality after, the saved model, ``result.json`` with the recipe's own fields
   (:meth:`Recipe.result_fields`); then checkpoints are pruned and every process shuts down.

A recipe is a :class:`Recipe` subclass overriding only the hooks where it differs; the
defaults are plain fine-tuning of ``config.model`` on its task.

Example:
    >>> from wattlm.train.config import FinetuneConfig
    >>> recipe = Recipe(FinetuneConfig(model="minilm-l6"))
    >>> recipe.model_spec
    'minilm-l6'
    >>> result = run_recipe(recipe, "runs/plain")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wattlm.models.load import LoadedModel
from wattlm.train.config import RecipeConfig
from wattlm.train.result import train_result, write_train_run
from wattlm.train.run import (
    check_model_labels,
    compat_for,
    finish,
    load_for_task,
    open_run,
    resolve_task,
    save_trained,
    set_threads,
    train_data_for,
)
from wattlm.training.data import LABELLED, TEXT
from wattlm.training.ddp import DistEnv, barrier, init_distributed, shutdown
from wattlm.training.evaluate import evaluate, load_eval_set
from wattlm.training.loop import LoopResult, LoopSpec, open_checkpoint, prepare_model, train_loop
from wattlm.training.losses import TaskLoss
from wattlm.training.optim import check_environment


@dataclass
class RecipeRun:
    """The state of one run, filled in step by step by :func:`run_recipe` and the hooks.

    Attributes:
        config: the recipe's config.
        env: this process's place in a data-parallel job.
        out: the run folder.
        task: ``"causal-lm"`` or ``"sequence-classification"``.
        base: the model loaded by :meth:`Recipe.load` (its tokenizer reads data and eval set;
            the teacher when distilling).
        data: the training data.
        model: the model that is trained, evaluated and saved (:meth:`Recipe.build`).
        eval_set: the held-out set quality is measured on.
        after_step: called after every optimizer step (e.g. re-apply pruning masks).
        loop: the loop's totals, once training ran.
    """

    config: RecipeConfig
    env: DistEnv
    out: Path
    task: str = ""
    base: LoadedModel | None = None
    data: Any = None
    model: LoadedModel | None = None
    eval_set: Any = None
    after_step: Callable[[], None] | None = None
    loop: LoopResult | None = None


class Recipe:
    """The hooks of a recipe; every default is plain fine-tuning of ``config.model``.

    Args:
        config: the recipe's config (its ``options`` drive the loop).
        model: an already loaded model to start from instead of ``config.model``.
    """

    def __init__(self, config: RecipeConfig, *, model: LoadedModel | None = None) -> None:
        self.config = config
        self.given = model

    @property
    def model_spec(self) -> str:
        """The spec of the model loaded first (it decides the task when the config says auto)."""
        return self.config.model

    def check(self, run: RecipeRun) -> None:
        """Quick checks of the recipe's own settings, before any model loads."""

    def load(self, run: RecipeRun) -> LoadedModel:
        """The model the data is read with: the given one, or ``model_spec`` for the task."""
        if self.given is not None:
            return self.given
        opts = run.config.options
        return load_for_task(
            self.model_spec, run.task, run.config.data, device=run.env.device, seed=opts.seed
        )

    def build(self, run: RecipeRun) -> LoadedModel:
        """The model that is trained (default: the loaded one); runs after the data checks."""
        return run.base

    def evaluate_before(self, run: RecipeRun) -> dict[str, Any]:
        """Quality before training (first process only), keyed by what was measured."""
        return {"before": evaluate(run.model, run.eval_set)}

    def loss_module(self, run: RecipeRun) -> torch.nn.Module:
        """The module the loop trains: ``forward(inputs) -> {"loss": ...}``."""
        return TaskLoss(run.model.model)

    def after_training(self, run: RecipeRun) -> None:
        """The last change to the trained model before it is evaluated and saved."""

    def result_fields(self, run: RecipeRun) -> dict[str, Any]:
        """Extra keyword arguments of :func:`~wattlm.train.result.train_result`."""
        return {}


def run_recipe(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    meter: Any = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Run ``recipe`` into ``out_dir`` (``model/``, ``log.jsonl``, ``config.json``,
    ``result.json``); see the module docstring for the order of the steps.

    Returns the result (``None`` on data-parallel processes other than the first).
    """
    config = recipe.config
    opts = config.options
    env = init_distributed(opts.device)
    try:
        run = RecipeRun(config, env, open_run(out_dir, resume=resume, env=env))
        check_environment(opts, env.device)
        set_threads(opts)
        recipe.check(run)
        given = recipe.given
        run.task = resolve_task(config.task, config.data, recipe.model_spec, given and given.task)

        # model and data: every check before any training
        run.base = recipe.load(run)
        run.base.model.to(env.device)
        run.data = train_data_for(config, run.base.tokenizer, run.task)
        check_model_labels(run.base, run.data)
        run.model = recipe.build(run)
        kind = TEXT if run.task == "causal-lm" else LABELLED
        run.eval_set = load_eval_set(config.data, kind, run.base.tokenizer)

        quality = recipe.evaluate_before(run) if env.is_main else {}
        module = recipe.loss_module(run)
        compat = compat_for(config, module, len(run.data), env)
        state = open_checkpoint(run.out, compat, env, device=env.device) if resume else None
        barrier(env)
        prepare_model(run.model.model, opts)
        run.loop = train_loop(
            LoopSpec(
                module,
                run.data,
                opts,
                env,
                run_dir=run.out,
                compat=compat,
                resume=state,
                after_step=run.after_step,
                on_step=on_step,
                meter=meter,
                progress=progress,
            )
        )

        result = None
        if env.is_main:
            recipe.after_training(run)
            quality["after"] = evaluate(run.model, run.eval_set)
            save_trained(run.model, run.out)
            result = train_result(
                config, model=run.model, loop=run.loop, quality=quality, **recipe.result_fields(run)
            )
            write_train_run(run.out, result)
        finish(run.out, env, opts)
        return result
    finally:
        shutdown(env)
