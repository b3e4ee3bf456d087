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
from wattlm.models.fingerprint import parameter_count
from wattlm.models.load import LoadedModel
from wattlm.train.config import DistillConfig
from wattlm.train.recipe import Recipe, RecipeRun, run_recipe
from wattlm.train.run import check_model_labels, peek_model
from wattlm.train.student import Student, build_student
from wattlm.training.evaluate import evaluate
from wattlm.training.losses import hard_loss, hidden_loss, kd_loss


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


class Distill(Recipe):
    """Distillation's hooks: the teacher is loaded first (it reads the data), the student is
    built from it, and the loss module mixes soft targets, labels and hidden states."""

    config: DistillConfig

    def __init__(
        self,
        config: DistillConfig,
        *,
        teacher: LoadedModel | None = None,
        student: LoadedModel | None = None,
    ) -> None:
        super().__init__(config, model=teacher)
        self.student = student
        self.built: Student | None = None

    @property
    def model_spec(self) -> str:
        return self.config.teacher

    def load(self, run: RecipeRun) -> LoadedModel:
        if self.given is None:
            _check_teacher_head(self.config.teacher, run.task)
        teacher = super().load(run)
        teacher.model.eval()
        return teacher

    def build(self, run: RecipeRun) -> LoadedModel:
        calibration = self.config.data.data if run.task == "causal-lm" else "wiki-sample"
        self.built = build_student(
            run.base,
            self.config.student,
            calibration_data=calibration,
            seed=self.config.options.seed,
            student=self.student,
        )
        pupil = self.built.loaded
        pupil.model.to(run.env.device)
        check_model_labels(pupil, run.data)
        return pupil

    def evaluate_before(self, run: RecipeRun) -> dict[str, Any]:
        return {"teacher": evaluate(run.base, run.eval_set), **super().evaluate_before(run)}

    def loss_module(self, run: RecipeRun) -> torch.nn.Module:
        torch.manual_seed(self.config.options.seed)  # the projection's initial weights
        module = DistillLoss(
            run.model.model,
            run.base.model,
            self.config,
            self.built.layer_map,
            causal=run.task == "causal-lm",
        )
        return module.to(run.env.device)

    def result_fields(self, run: RecipeRun) -> dict[str, Any]:
        info = {
            "spec": self.config.student,
            "layer_map": self.built.layer_map,
            "parameters": parameter_count(run.model.model),
            "teacher_parameters": parameter_count(run.base.model),
            **self.built.report,
        }
        return {"teacher": run.base, "student": info}


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
    recipe = Distill(config, teacher=teacher, student=student)
    return run_recipe(
        recipe, out_dir, resume=resume, progress=progress, meter=meter, on_step=on_step
    )
