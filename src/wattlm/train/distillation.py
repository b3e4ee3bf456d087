"""``distill``: train a smaller student to imitate its teacher.

The student (built from the teacher by :mod:`wattlm.train.student`) learns from the
teacher's soft targets at temperature ``T`` and from the true labels (classification
labels, or the next token of the text), mixed by ``alpha``; optionally also from the
teacher's hidden states through a learned projection (``hidden_weight``)::

    loss = alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(s, y)
           + hidden_weight · mean_j MSE(P h_s[j], h_t[map[j]])

The teacher runs frozen, in eval mode, under the same autocast as the student.

Example:
    >>> from wattlm.train.config import DistillConfig
    >>> cfg = DistillConfig(teacher="runs/teacher", student="layers:3")
    >>> result = distill(cfg, "runs/student")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from wattlm.errors import WattlmError
from wattlm.models.load import LoadedModel
from wattlm.train.config import DistillConfig
from wattlm.train.data import LABELLED, TEXT
from wattlm.train.ddp import barrier, init_distributed, shutdown
from wattlm.train.evaluate import evaluate, load_eval_set
from wattlm.train.loop import LoopSpec, open_checkpoint, prepare_model, train_loop
from wattlm.train.losses import hard_loss, hidden_loss, kd_loss
from wattlm.train.optim import check_environment
from wattlm.train.result import train_result, write_train_run
from wattlm.train.run import (
    check_model_labels,
    compat_for,
    finish,
    load_for_task,
    open_run,
    peek_model,
    resolve_task,
    save_trained,
    set_threads,
    train_data_for,
)
from wattlm.train.student import build_student


class DistillLoss(torch.nn.Module):
    """Loss module of distillation: the student (and projection) are trained; the teacher
    is held outside the module's parameters, so it is neither optimised, checkpointed nor
    synchronised by data parallelism."""

    def __init__(
        self,
        student: torch.nn.Module,
        teacher: torch.nn.Module,
        config: DistillConfig,
        layer_map: list[int],
        *,
        causal: bool,
    ) -> None:
        super().__init__()
        self.student = student
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False)
        self.temperature, self.alpha = config.temperature, config.alpha
        self.hidden_weight, self.layer_map, self.causal = config.hidden_weight, layer_map, causal
        ds, dt = student.config.hidden_size, teacher.config.hidden_size
        self.projection = torch.nn.Linear(ds, dt, bias=False) if ds != dt else torch.nn.Identity()

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        labels = inputs["labels"]
        feed = {k: v for k, v in inputs.items() if k != "labels"}
        hidden = self.hidden_weight > 0
        with torch.no_grad():
            t = self.teacher(**feed, output_hidden_states=hidden)
        s = self.student(**feed, output_hidden_states=hidden)
        mask = feed.get("attention_mask") if self.causal else None
        kd = kd_loss(s.logits, t.logits, self.temperature, mask)
        ce = hard_loss(s.logits, labels, causal=self.causal)
        loss = self.alpha * kd + (1 - self.alpha) * ce
        out = {"kd": kd.detach(), "ce": ce.detach()}
        if hidden:
            h = hidden_loss(
                s.hidden_states,
                t.hidden_states,
                self.layer_map,
                self.projection,
                feed.get("attention_mask"),
            )
            loss = loss + self.hidden_weight * h
            out["hidden"] = h.detach()
        out["loss"] = loss
        return out


def _check_teacher_head(spec: str, task: str) -> None:
    arch, _ = peek_model(spec)
    if task == "sequence-classification" and not (arch or "").endswith("ForSequenceClassification"):
        raise WattlmError(
            f"the teacher {spec!r} has no trained classification head",
            hint="fine-tune it first: wattlm train finetune --model ... --out runs/teacher",
        )


def distill(
    config: DistillConfig,
    out_dir: str | Path,
    *,
    teacher: LoadedModel | None = None,
    student: LoadedModel | None = None,
    resume: bool = False,
    progress: bool = True,
    meter: Any = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Distil ``config.teacher`` into ``config.student`` (or the given loaded models) and
    write the run to ``out_dir``. Returns the result (``None`` on processes other than
    the first)."""
    opts = config.options
    env = init_distributed(opts.device)
    try:
        out = open_run(out_dir, resume=resume, env=env)
        check_environment(opts, env.device)
        set_threads(opts)
        task = resolve_task(config.task, config.data, config.teacher, teacher and teacher.task)

        # teacher, student and data: every check before any training
        if teacher is None:
            _check_teacher_head(config.teacher, task)
            teacher = load_for_task(
                config.teacher, task, config.data, device=env.device, seed=opts.seed
            )
        teacher.model.to(env.device).eval()
        data = train_data_for(config, teacher.tokenizer, task)
        check_model_labels(teacher, data)
        calibration = config.data.data if task == "causal-lm" else "wiki-sample"
        built = build_student(
            teacher, config.student, calibration_data=calibration, seed=opts.seed, student=student
        )
        pupil = built.loaded
        pupil.model.to(env.device)
        check_model_labels(pupil, data)
        eval_set = load_eval_set(
            config.data, TEXT if task == "causal-lm" else LABELLED, teacher.tokenizer
        )
        torch.manual_seed(opts.seed)  # the projection's initial weights
        module = DistillLoss(
            pupil.model, teacher.model, config, built.layer_map, causal=task == "causal-lm"
        ).to(env.device)
        compat = compat_for(config, module, len(data), env)
        state = open_checkpoint(out, compat, env, device=env.device) if resume else None

        quality: dict[str, Any] = {}
        if env.is_main:
            quality["teacher"] = evaluate(teacher, eval_set)
            quality["before"] = evaluate(pupil, eval_set)
        barrier(env)
        prepare_model(pupil.model, opts)
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
            quality["after"] = evaluate(pupil, eval_set)
            save_trained(pupil, out)
            from wattlm.models.fingerprint import parameter_count

            info = {
                "spec": config.student,
                "layer_map": built.layer_map,
                "parameters": parameter_count(pupil.model),
                "teacher_parameters": parameter_count(teacher.model),
                **built.report,
            }
            result = train_result(
                config, model=pupil, loop=loop, quality=quality, teacher=teacher, student=info
            )
            write_train_run(out, result)
        finish(out, env, opts)
        return result
    finally:
        shutdown(env)
