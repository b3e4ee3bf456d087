"""A synthetic training trial: made-up but consistent learning curves and joules, no model.

For tests of ``wattlm train search`` (stop at target, pruning, resume, samplers) and for
trying a space quickly. Each option scales the energy per sample (bf16, fewer trained
layers, bucketed batches cost less; gradient checkpointing more) and shapes the learning
curve ``q(n) = q0 + (q_max − q0)(1 − exp(−n · rate))`` (the learning rate is best near
1e-4; SGD and Adagrad learn slower; frozen layers and LoRA end lower). Every figure is
labelled ``fake``; :func:`energy_to_target` gives the exact answer a search should find.

Example:
    >>> round(energy_to_target({"optimizer": "adamw", "lr": 1e-4}, 0.8, 2048, 64), 2)
    52.8
    >>> energy_to_target({"optimizer": "sgd", "lr": 1e-5}, 0.8, 2048, 64) is None
    True
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

Q0 = 0.5
OPTIMIZER_SPEED = {"adamw": 1.0, "sgd": 0.35, "adagrad": 0.6, "adafactor": 0.9}
OPTIMIZER_ENERGY = {"adamw": 1.0, "sgd": 0.92, "adagrad": 0.95, "adafactor": 0.97}
LAYERS = {  # energy factor, final quality
    "all": (1.0, 0.92),
    "freeze-embeddings": (0.9, 0.915),
    "freeze-lower": (0.65, 0.88),
    "lora": (0.55, 0.86),
}
ENERGY_PER_SAMPLE_J = 0.1


def energy_per_sample(params: dict[str, Any]) -> float:
    """Joules per training sample of a configuration."""
    e = ENERGY_PER_SAMPLE_J * OPTIMIZER_ENERGY[params.get("optimizer", "adamw")]
    e *= LAYERS[params.get("train_layers", "all")][0]
    e *= 0.7 if params.get("precision", "fp32") == "bf16" else 1.0
    e *= 1.35 if params.get("gradient_checkpointing", False) else 1.0
    e *= 0.8 if params.get("length_batching", "longest") == "bucketed" else 1.0
    e *= 1.0 + 0.5 / params.get("batch_size", 16)  # per-step overhead
    return e


def quality_at(params: dict[str, Any], samples: int) -> float:
    """Accuracy after ``samples`` training samples."""
    lr = params.get("lr", 5e-5)
    rate = 1.0 / 400 * OPTIMIZER_SPEED[params.get("optimizer", "adamw")]
    rate *= math.exp(-0.5 * (math.log10(lr / 1e-4) / 0.5) ** 2)
    rate *= 0.9 if params.get("precision", "fp32") == "bf16" else 1.0
    warm = params.get("warmup_steps", 0) * params.get("batch_size", 16)
    n = max(0, samples - warm // 2)
    q_max = LAYERS[params.get("train_layers", "all")][1]
    return Q0 + (q_max - Q0) * (1.0 - math.exp(-n * rate))


def energy_to_target(
    params: dict[str, Any], target: float, max_samples: int, eval_every_samples: int
) -> float | None:
    """The energy a trial of ``params`` spends to reach ``target`` (``None``: not within
    ``max_samples``), evaluated as :class:`SyntheticTrainEvaluator` does."""
    from wattlm.search.train_trial import TrainTrialSpec

    spec = TrainTrialSpec(0, params, target, True, max_samples, eval_every_samples)
    per_step = energy_per_sample(params) * spec.global_batch
    for step in range(1, spec.max_steps + 1):
        due = step % spec.eval_every == 0 or step == spec.max_steps
        if due and quality_at(params, step * spec.global_batch) >= target:
            return per_step * step
    return None


@dataclass(frozen=True)
class SyntheticTrainEvaluator:
    """Runs a :class:`~wattlm.search.train_trial.TrainTrialSpec` on the made-up curves.

    ``delay_s`` per optimizer step; ``log_path`` gets one JSON line per trial (number,
    process id, start and end time, stop), so tests can see what ran.
    """

    delay_s: float = 0.0
    log_path: str | None = None

    def __call__(self, spec: Any) -> dict[str, Any]:
        started = time.time()
        monitor = spec.monitor()
        params = spec.params
        per_step = energy_per_sample(params) * spec.global_batch
        for _ in range(spec.max_steps):
            if self.delay_s:
                time.sleep(self.delay_s)
            n = monitor.samples + spec.global_batch
            stop = monitor.step(per_step, spec.global_batch, lambda n=n: quality_at(params, n),
                                lambda: 0.01 * per_step)  # fmt: skip
            if stop is not None:
                break
        out = monitor.outcome()
        out.update(
            error=None,
            energy_source="fake",
            trainable_params=1000,
            peak_rss_bytes=None,
            time_s=time.time() - started,
        )
        if self.log_path:
            line = {"number": spec.number, "pid": os.getpid(), "start": started,
                    "end": time.time(), "stop": out["stop"]}  # fmt: skip
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        return out
