"""What a ``wattlm train search`` trial trains when the searched recipe is ``distill``: the
student built from the teacher and distillation's loss module.

``wattlm.search`` may not import the recipes (they are its peers in the layering), so the
search takes this function as its ``parts`` argument, and ``wattlm train search --recipe
distill`` (the CLI, above both) hands it over. It is a module-level function, so Ray can
ship it to its workers.

Example:
    >>> from wattlm.testing.tiny import tiny_classifier
    >>> from types import SimpleNamespace
    >>> spec = SimpleNamespace(model="t", seed=0, task="sequence-classification",
    ...                        recipe_args={"student": "layers:1"})
    >>> student, loss = distill_parts(spec, tiny_classifier(), None)
    >>> student.model.config.num_hidden_layers, type(loss).__name__
    (1, 'DistillLoss')
"""

from __future__ import annotations

from typing import Any

import torch

from wattlm.models.load import LoadedModel


def distill_parts(
    spec: Any, teacher: LoadedModel, data: Any
) -> tuple[LoadedModel, torch.nn.Module]:
    """A fresh student of ``spec.recipe_args["student"]`` (default ``layers:3``) built from
    ``teacher``, and the loss module that distils the teacher into it (temperature and
    alpha from ``spec.recipe_args``)."""
    from wattlm.train.config import DistillConfig
    from wattlm.train.distillation import DistillLoss
    from wattlm.train.student import build_student

    args = dict(spec.recipe_args or {})
    config = DistillConfig(
        teacher=spec.model,
        student=args.get("student", "layers:3"),
        temperature=float(args.get("temperature", 2.0)),
        alpha=float(args.get("alpha", 0.5)),
    )
    causal = spec.task == "causal-lm"
    calibration = args.get("data", "wiki-sample") if causal else "wiki-sample"
    teacher.model.eval()
    built = build_student(teacher, config.student, calibration_data=calibration, seed=spec.seed)
    torch.manual_seed(spec.seed)  # the projection's initial weights
    module = DistillLoss(built.loaded.model, teacher.model, config, built.layer_map, causal=causal)
    return built.loaded, module
