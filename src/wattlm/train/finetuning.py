"""``finetune``: train a model on a task, measuring what the training costs.

A classifier (labelled data: ``movie-sentiment``, ``.jsonl``, ``.tsv``) trains its
sequence-classification head and body with cross-entropy; a causal LM (text: ``wiki-sample``,
``.txt``) trains on next-token prediction over fixed-length chunks of the train split.
``keep_sparsity`` holds a pruned model's zeros at zero (recovery fine-tuning).

Example:
    >>> from wattlm.train.config import FinetuneConfig
    >>> from wattlm.train.options import DataConfig, TrainOptions
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
from wattlm.train.data import LABELLED, TEXT
from wattlm.train.ddp import barrier, init_distributed, shutdown
from wattlm.train.evaluate import evaluate, load_eval_set
from wattlm.train.loop import LoopSpec, open_checkpoint, prepare_model, train_loop
from wattlm.train.optim import check_environment
from wattlm.train.recovery import SparsityMasks
from wattlm.train.result import train_result, write_train_run
from wattlm.train.run import (
    TaskLoss,
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
    opts = config.options
    env = init_distributed(opts.device)
    try:
        out = open_run(out_dir, resume=resume, env=env)
        check_environment(opts, env.device)
        set_threads(opts)
        task = resolve_task(config.task, config.data, config.model, model and model.task)

        # model and data: every check before any training
        lm = model or load_for_task(
            config.model, task, config.data, device=env.device, seed=opts.seed
        )
        lm.model.to(env.device)
        data = train_data_for(config, lm.tokenizer, task)
        check_model_labels(lm, data)
        eval_set = load_eval_set(
            config.data, TEXT if task == "causal-lm" else LABELLED, lm.tokenizer
        )
        masks = SparsityMasks.from_zeros(lm.model) if config.keep_sparsity else None
        sparsity_before = masks.sparsity() if masks else None
        module = TaskLoss(lm.model)
        compat = compat_for(config, module, len(data), env)
        state = open_checkpoint(out, compat, env, device=env.device) if resume else None

        before = evaluate(lm, eval_set) if env.is_main else None
        barrier(env)
        prepare_model(lm.model, opts)
        loop = train_loop(
            LoopSpec(
                module,
                data,
                opts,
                env,
                run_dir=out,
                compat=compat,
                resume=state,
                after_step=masks.apply_ if masks else None,
                on_step=on_step,
                meter=meter,
                progress=progress,
            )
        )

        result = None
        if env.is_main:
            after = evaluate(lm, eval_set)
            save_trained(lm, out)
            sparsity = None
            if masks is not None:
                sparsity = {"before": sparsity_before, "after": masks.sparsity()}
            result = train_result(
                config,
                model=lm,
                loop=loop,
                quality={"before": before, "after": after},
                sparsity=sparsity,
            )
            write_train_run(out, result)
        finish(out, env, opts)
        return result
    finally:
        shutdown(env)
