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

from wattlm.errors import WattlmError
from wattlm.models.load import LoadedModel
from wattlm.train.config import QatConfig
from wattlm.train.data import LABELLED, TEXT
from wattlm.train.ddp import barrier, init_distributed, shutdown
from wattlm.train.evaluate import evaluate, load_eval_set
from wattlm.train.fakequant import convert_qat_, prepare_qat_, resolve_backend
from wattlm.train.loop import LoopSpec, open_checkpoint, prepare_model, train_loop
from wattlm.train.optim import check_environment
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

#: QAT scheme -> the compress method whose modules and restorer the result uses
COMPRESS_METHOD = {"int8": "int8-weight", "int8-dynamic": "int8-dynamic"}


def stage_config(config: QatConfig):
    """The compress config describing the converted model (its restorer rebuilds it)."""
    from wattlm.compress.quantize import Int8DynamicConfig, Int8WeightConfig

    cls = Int8DynamicConfig if config.scheme == "int8-dynamic" else Int8WeightConfig
    return cls(skip=config.skip)


def qat_targets(model, skip: tuple[str, ...]) -> list[str]:
    """Names of the Linear layers QAT quantizes (the same set compress's restorer swaps)."""
    from wattlm.compress.qlinear import Int8DynamicLinear, Int8WeightLinear
    from wattlm.compress.qlinear_int4 import Int4WeightLinear
    from wattlm.compress.quantize_swap import linear_modules

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
    from wattlm.compress import compress_

    copy_lm = copy.copy(lm)
    copy_lm.model = copy.deepcopy(lm.model)
    compress_(copy_lm.model, stage_config(config))
    return evaluate(copy_lm, eval_set)


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
    opts = config.options
    env = init_distributed(opts.device)
    try:
        out = open_run(out_dir, resume=resume, env=env)
        check_environment(opts, env.device)
        set_threads(opts)
        backend = resolve_backend(config.backend)
        task = resolve_task(config.task, config.data, config.model, model and model.task)

        # model and data: every check before any training
        lm = model or load_for_task(
            config.model, task, config.data, device=env.device, seed=opts.seed
        )
        lm.model.to(env.device)
        targets = qat_targets(lm.model, config.skip)
        data = train_data_for(config, lm.tokenizer, task)
        check_model_labels(lm, data)
        eval_set = load_eval_set(
            config.data, TEXT if task == "causal-lm" else LABELLED, lm.tokenizer
        )
        quality: dict[str, Any] = {}
        if env.is_main:
            quality["before"] = evaluate(lm, eval_set)
            quality["ptq"] = _ptq_quality(lm, config, eval_set)

        prepare_qat_(lm.model, targets, scheme=config.scheme, backend=backend)
        module = TaskLoss(lm.model)
        compat = compat_for(config, module, len(data), env)
        state = open_checkpoint(out, compat, env, device=env.device) if resume else None
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
                on_step=on_step,
                meter=meter,
                progress=progress,
            )
        )

        result = None
        if env.is_main:
            converted = convert_qat_(lm.model, targets, scheme=config.scheme, backend=backend)
            stage = stage_config(config)
            lm.compression = [
                *lm.compression,
                {
                    "method": stage.method,
                    "config": stage.to_dict(),
                    "layers_quantized": converted,
                    "qat": {
                        "scheme": config.scheme,
                        "backend": backend,
                        "grid": "int8 symmetric per channel, scale = max|w| / 127.5",
                    },
                },
            ]
            quality["after"] = evaluate(lm, eval_set)
            save_trained(lm, out)
            result = train_result(
                config,
                model=lm,
                loop=loop,
                quality=quality,
                notes=[f"QAT ({backend} fake quantization), converted to {converted} int8 layers"],
            )
            write_train_run(out, result)
        finish(out, env, opts)
        return result
    finally:
        shutdown(env)
