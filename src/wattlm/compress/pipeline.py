"""``compress_model``: load → bench → apply recipe → save → reload → bench → compare.

Everything lands in one run folder, written atomically (a failed run leaves nothing)::

    OUT/model/                  the compressed model (safetensors + config + stages)
    OUT/recipe.yaml             the recipe as given
    OUT/original/result.json    bench of the model before compression (+ config.json)
    OUT/compressed/result.json  bench of the RELOADED compressed model (+ config.json)
    OUT/comparison.json|.md     before/after figures and their ratios
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattlm._files import atomic_path, write_json, write_text
from wattlm.bench.config import BenchConfig
from wattlm.bench.runner import bench
from wattlm.compress.compare import compare_results, render_comparison
from wattlm.compress.recipe import apply_recipe, load_recipe
from wattlm.errors import WattlmError
from wattlm.models.load import load_model, save_model


def compress_model(
    model: str,
    recipe_path: str | Path,
    out_dir: str | Path,
    *,
    bench_config: BenchConfig | None = None,
    run_bench: bool = True,
    progress: bool = True,
    on_stage: Callable[[int, Any], None] | None = None,
) -> dict[str, Any]:
    """Compress ``model`` by the recipe, save it, and bench it against the original.

    Returns the comparison (``{}`` figures when ``run_bench`` is False).
    """
    recipe = load_recipe(recipe_path)  # validated before any work
    cfg = dataclasses.replace(bench_config or BenchConfig(backends=("torch",)), model=model)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise WattlmError(f"{out} exists and is not empty", hint="pass a new --out folder")
    with atomic_path(out, directory=True) as tmp:
        shutil.copyfile(recipe_path, tmp / "recipe.yaml")
        lm = load_model(model, dtype=cfg.dtype, device=cfg.device)
        before = (
            bench(cfg, model=lm, out_dir=tmp / "original", progress=progress) if run_bench else None
        )
        lm.compression = apply_recipe(lm.model, recipe, tokenizer=lm.tokenizer, on_stage=on_stage)
        save_model(lm, tmp / "model")
        shutil.copyfile(recipe_path, tmp / "model" / "recipe.yaml")
        del lm
        gc.collect()
        reloaded = load_model(str(tmp / "model"), device=cfg.device)
        comparison: dict[str, Any] = {"recipe": recipe.to_dict(), "stages": reloaded.compression}
        if run_bench:
            after_cfg = dataclasses.replace(cfg, model=str(out / "model"))
            after = bench(after_cfg, model=reloaded, out_dir=tmp / "compressed", progress=progress)
            comparison.update(compare_results(before, after))
            write_text(tmp / "comparison.md", render_comparison(comparison))
        write_json(tmp / "comparison.json", comparison)
    return comparison
