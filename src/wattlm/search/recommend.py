"""Save the recommended configuration's model and bench it again from its files.

- torch (and ONNX Runtime) variants: the compressed model folder (``save_model``: the
  stage list travels with the weights, ``load_model`` rebuilds it);
- llama.cpp variants: the trial's ``.gguf`` file (exported again if it is missing).

The re-bench loads what was saved, exactly as a user would, and measures it at the full
stage's settings: ``recommended/result.json`` + ``config.json``. A ``.gguf`` that is a
byte-identical copy of the file the trial's full stage ran in the same run (the usual
case: llama.cpp loads the file, nothing is rebuilt) is not measured twice: its
``result.json`` is that measurement's, with a note saying so and the file's SHA-256.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattlm.bench.backends import backend_class
from wattlm.bench.served_quality import put_served, served_entry
from wattlm.report.records import RecommendedModel, TrialRecord
from wattlm.search.study import candidate_of

if TYPE_CHECKING:
    from wattlm.search.state import SearchState


def save_recommended(s: SearchState, rec: TrialRecord) -> RecommendedModel:
    """Write ``recommended/`` for trial record ``rec``; return the record's entry for it."""
    from wattlm._files import atomic_path
    from wattlm.bench.runner import bench, write_run
    from wattlm.models.fingerprint import weight_bytes
    from wattlm.models.load import LoadedModel, load_model, save_model
    from wattlm.search import heal_cache
    from wattlm.search.evaluate import TrialSpec, bench_config

    cfg, base, cand = s.cfg, s.base, candidate_of(rec)
    folder = s.out / "recommended"
    folder.mkdir(parents=True, exist_ok=True)
    stages = cand.effective_stages()
    cache = s.out / "cache"
    if backend_class(cand.backend).runs_gguf:
        target = folder / "model.gguf"
        exported = s.out / "trials" / str(rec["number"]) / "model.gguf"
        if exported.is_file():
            with atomic_path(target) as tmp:
                shutil.copyfile(exported, tmp)
        else:
            from wattlm.export.gguf_writer import export_gguf

            model, _, _ = heal_cache.compress_copy(  # healed weights: the search's own
                base.model, stages, tokenizer=base.tokenizer, data=cfg.data, cache_dir=cache
            )
            export_gguf(
                model, base.tokenizer, target, qtype=cand.qtype, tokenizer_gguf=base.gguf_path
            )
            del model
    else:
        target = folder / "model"
        if stages:
            # stages up to a heal come from the search's cache (healed once per search)
            model, log, _ = heal_cache.compress_copy(
                base.model, stages, tokenizer=base.tokenizer, data=cfg.data, cache_dir=cache
            )
            # a GGUF load's quantization marker: save_model would rebuild plain layers from
            # it and refuse the compressed ones; the compressed save needs no marker
            if getattr(model.config, "quantization_config", None) is not None:
                del model.config.quantization_config
            variant = LoadedModel(model, base.tokenizer, base.spec, task=base.task, compression=log)
        else:
            model = base.model
            variant = LoadedModel(
                model, base.tokenizer, base.spec, base.path, base.format, base.task
            )
        save_model(variant, target)
        del model, variant
    measured = _measured_file(rec, target) if backend_class(cand.backend).runs_gguf else None
    if measured is not None:
        # the file is the very one the trial's full stage measured in this run: its bench
        # is this file's bench (a second one would only re-measure the same bytes)
        prior_dir = Path(rec["result_path"]).parent
        bench_config_dict = json.loads((prior_dir / "config.json").read_text(encoding="utf-8"))
        result = json.loads((prior_dir / "result.json").read_text(encoding="utf-8"))
        result["notes"].append(
            f"not benched again: {target.name} is a byte-identical copy (SHA-256 "
            f"{measured[:16]}…) of the file trial {rec['number']} ran at the full stage in "
            "this run; these are that measurement's figures"
        )
        write_run(folder, bench_config_dict, result)
        return _entry(s, rec, cand, target, folder, result, target.stat().st_size)
    loaded = load_model(str(target), device=cfg.device)
    reused = _same_weights_quality(rec, loaded)
    spec = TrialSpec(
        number=rec["number"],
        candidate=cand,
        stage="full",
        settings=cfg.full,
        objective=cfg.objective,
        energy_view=cfg.energy_view,
        model=str(target),
        data=cfg.data,
        meter=cfg.meter,
        device=cfg.device,
        ppl_max_length=cfg.ppl_max_length,
        ppl_stride=cfg.ppl_stride,
        quality=reused,
    )
    bench_cfg = bench_config(spec, loaded)
    result = bench(bench_cfg, model=loaded, progress=False)
    if reused is not None:
        put_served(result, cand.backend, reused)
        result["notes"].append(
            f"perplexity reused from trial {rec['number']}'s full-stage measurement: the weights "
            "loaded from these files are bit-identical to it (same SHA-256 fingerprint)"
        )
    write_run(folder, bench_cfg.to_dict(), result)
    size = target.stat().st_size if target.is_file() else weight_bytes(loaded.model)
    return _entry(s, rec, cand, target, folder, result, size)


def _entry(
    s: SearchState,
    rec: TrialRecord,
    cand: Any,
    target: Path,
    folder: Path,
    result: dict[str, Any],
    size: int,
) -> RecommendedModel:
    """The record's ``recommended_model`` entry for the saved ``target`` and its bench."""
    from wattlm.search.metrics import metrics_from_result

    cfg = s.cfg
    metrics = metrics_from_result(
        result, objective=cfg.objective, weight_bytes=size, energy_view=cfg.energy_view
    )
    if metrics["perplexity"] is not None:
        metrics["perplexity_increase"] = metrics["perplexity"] / s.baseline_ppl("full") - 1.0
    flags = backend_class(cand.backend).weight_config(cand.qtype)  # e.g. ONNX weights
    command = (
        f"wattlm bench --model {target} --backend {cand.backend} "
        f"--batch {cand.batch_size} --threads {cand.threads}"
        + "".join(f" --{k.replace('_', '-')} {v}" for k, v in flags.items())
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


def _measured_file(rec: TrialRecord, target: Path) -> str | None:
    """The SHA-256 of ``target`` when it is byte for byte the model file that trial
    ``rec``'s full-stage bench ran (``None`` otherwise: not a full-stage trial, no result,
    another file or other bytes)."""
    from wattlm.assets.verify import sha256_file as file_sha256

    path = rec.get("result_path")
    if rec.get("stage") != "full" or not path or not Path(path).is_file():
        return None
    prior = json.loads(Path(path).read_text(encoding="utf-8"))
    ran = Path(prior["model"].get("path") or "")
    if not ran.is_file() or not target.is_file():
        return None
    digest = file_sha256(target)
    return digest if file_sha256(ran) == digest else None


def _same_weights_quality(rec: TrialRecord, loaded: Any) -> dict[str, Any] | None:
    """The trial's full-stage perplexity, when ``loaded`` holds exactly the weights it had."""
    from wattlm.models.fingerprint import state_dict_sha256

    path = rec.get("result_path")
    if rec.get("stage") != "full" or not path or not Path(path).is_file():
        return None
    prior = json.loads(Path(path).read_text(encoding="utf-8"))
    served = served_entry(prior, rec["backend"])
    if not served:
        return None
    if prior["model"]["fingerprint_sha256"] != state_dict_sha256(loaded.model):
        return None
    return served


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)
