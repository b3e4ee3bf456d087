"""Save the recommended configuration's model and bench it again from its files.

- torch (and ONNX Runtime) variants: the compressed model folder (``save_model``: the
  stage list travels with the weights, ``load_model`` rebuilds it);
- llama.cpp variants: the trial's ``.gguf`` file (exported again if it is missing).

The re-bench loads what was saved, exactly as a user would, and measures it at the full
stage's settings: ``recommended/result.json`` + ``config.json``.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from wattlm.search.study import candidate_of


def save_recommended(s: Any, rec: dict[str, Any]) -> dict[str, Any]:
    """Write ``recommended/`` for trial record ``rec``; return the record's entry for it."""
    from wattlm._files import atomic_path
    from wattlm.bench.runner import bench
    from wattlm.models.fingerprint import weight_bytes
    from wattlm.models.load import LoadedModel, load_model, save_model
    from wattlm.search.evaluate import TrialSpec, apply_stages, bench_config
    from wattlm.search.metrics import metrics_from_result

    cfg, base, cand = s.cfg, s.base, candidate_of(rec)
    folder = s.out / "recommended"
    folder.mkdir(parents=True, exist_ok=True)
    stages = cand.effective_stages()
    if cand.backend == "llamacpp":
        target = folder / "model.gguf"
        exported = s.out / "trials" / str(rec["number"]) / "model.gguf"
        if exported.is_file():
            with atomic_path(target) as tmp:
                shutil.copyfile(exported, tmp)
        else:
            from wattlm.export.gguf_writer import export_gguf

            model = copy.deepcopy(base.model)
            apply_stages(model, stages, tokenizer=base.tokenizer, data=cfg.data)
            export_gguf(
                model, base.tokenizer, target, qtype=cand.qtype, tokenizer_gguf=base.gguf_path
            )
            del model
    else:
        target = folder / "model"
        model = copy.deepcopy(base.model) if stages else base.model
        log = apply_stages(model, stages, tokenizer=base.tokenizer, data=cfg.data)
        variant = LoadedModel(
            model, base.tokenizer, base.spec, base.path, base.format, base.task, compression=log
        )
        save_model(variant, target)
        del model, variant
    loaded = load_model(str(target), device=cfg.device)
    spec = TrialSpec(
        number=rec["number"],
        candidate=cand,
        stage="full",
        settings=cfg.full,
        objective=cfg.objective,
        model=str(target),
        data=cfg.data,
        meter=cfg.meter,
        device=cfg.device,
        ppl_max_length=cfg.ppl_max_length,
        ppl_stride=cfg.ppl_stride,
    )
    bench_cfg = bench_config(spec, loaded)
    result = bench(bench_cfg, model=loaded, out_dir=folder, progress=False)
    size = target.stat().st_size if target.is_file() else weight_bytes(loaded.model)
    metrics = metrics_from_result(result, objective=cfg.objective, weight_bytes=size)
    if metrics["perplexity"] is not None:
        metrics["perplexity_increase"] = metrics["perplexity"] / s.baseline_ppl("full") - 1.0
    command = (
        f"wattlm bench --model {target} --backend {cand.backend} "
        f"--batch {cand.batch_size} --threads {cand.threads}"
    )
    return {
        "number": rec["number"],
        "path": _relative(target, s.out),
        "result_path": _relative(folder / "result.json", s.out),
        "backend": cand.backend,
        "qtype": cand.qtype,
        "batch_size": cand.batch_size,
        "threads": cand.threads,
        "metrics": metrics,
        "command": command,
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)
