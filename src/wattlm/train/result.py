"""``result.json`` (``kind: "train"``) and ``config.json`` of a training run.

The result holds quality before and after (and of the teacher, or of plain post-training
quantization for QAT), the training totals with energy in joules and gCO2e and the energy
source label, peak memory, every option used, and the machine context. Fields are described
in ``docs/result-format.md``; the schema is ``$defs.train_result`` in
``wattlm/report/schema.json``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from wattlm._files import write_json
from wattlm._version import __version__
from wattlm.measure.carbon import carbon_of, grid_intensity
from wattlm.measure.context import collect_context
from wattlm.models.load import LoadedModel
from wattlm.report.result import validate_result
from wattlm.train.config import RecipeConfig
from wattlm.training.loop import LoopResult
from wattlm.training.steplog import throughput


def training_section(loop: LoopResult, grid_intensity: float | None) -> dict[str, Any]:
    """The ``training`` object: totals, speed, energy and carbon of the whole run."""
    carbon = carbon_of(loop.energy_j, grid_intensity)
    per_step = None if loop.energy_j is None or not loop.steps else loop.energy_j / loop.steps
    return {
        "steps": loop.steps,
        "planned_steps": loop.planned_steps,
        "steps_per_epoch": loop.steps_per_epoch,
        "epochs": loop.epochs,
        "samples": loop.samples,
        "tokens": loop.tokens,
        "time_s": loop.time_s,
        **throughput(samples=loop.samples, tokens=loop.tokens, time_s=loop.time_s),
        "global_batch_size": loop.global_batch_size,
        "world_size": loop.world_size,
        "stopped_by": loop.stopped_by,
        "resumed_from_step": loop.resumed_from_step,
        "loss_first": loop.loss_first,
        "loss_last": loop.loss_last,
        "energy_j": loop.energy_j,
        "energy_j_per_step": per_step,
        "energy_source": loop.energy_source,
        "energy_scope": loop.energy_scope,
        "g_co2e": carbon.grams_co2e,
    }


def train_result(
    config: RecipeConfig,
    *,
    model: LoadedModel,
    loop: LoopResult,
    quality: dict[str, Any],
    teacher: LoadedModel | None = None,
    student: dict[str, Any] | None = None,
    sparsity: dict[str, float] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Assemble the result dict (validate and write it with :func:`write_train_run`)."""
    opts = config.options
    intensity = grid_intensity(opts.grid_intensity_g_per_kwh)
    all_notes = list(model.notes) + list(notes or [])
    if loop.energy_source.startswith("estimate:"):
        all_notes.append(
            "training energy is an estimate (no sensor on this machine): process CPU time × "
            "per-core power model + DRAM; see docs/energy.md"
        )
    if loop.resumed_from_step is not None:
        all_notes.append(
            f"resumed from step {loop.resumed_from_step}: totals include the earlier session up "
            "to that checkpoint; work done after it and lost is not counted"
        )
    return {
        "schema_version": 1,
        "kind": "train",
        "wattlm_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "recipe": config.recipe,
        "config": config.to_dict(),
        "model": model.describe(),
        "teacher": teacher.describe() if teacher is not None else None,
        "quality": {
            "before": quality.get("before"),
            "after": quality["after"],
            "teacher": quality.get("teacher"),
            "ptq": quality.get("ptq"),
        },
        "training": training_section(loop, opts.grid_intensity_g_per_kwh),
        "energy": {
            "source": loop.energy_source,
            "meter": loop.meter,
            "idle_subtracted": loop.idle_subtracted,
        },
        "carbon": intensity.to_dict(),
        "memory": {
            "peak_rss_bytes": loop.peak_rss_bytes,
            "start_rss_bytes": loop.start_rss_bytes,
            "peak_cuda_bytes": loop.peak_cuda_bytes,
        },
        "options": opts.to_dict(),
        "student": student,
        "compression": list(model.compression),
        "sparsity": sparsity,
        "notes": all_notes,
        "context": collect_context(opts.threads),
    }


def write_train_run(out_dir: str | Path, result: dict[str, Any]) -> Path:
    """Validate ``result`` and write ``config.json`` then ``result.json`` atomically."""
    validate_result(result)
    out = Path(out_dir)
    write_json(out / "config.json", result["config"])
    write_json(out / "result.json", result)
    return out
