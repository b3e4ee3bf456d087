"""``optimize``: the search from start to recommendation.

1. **Baseline** (trial 0): the float model on torch at batch 1, measured at both stages.
2. **Peer**: llama.cpp on the model's own GGUF file, batch 1, same threads ("llama.cpp
   default"), full stage; recorded apart, for the ratio.
3. **Search**: ask/tell over the space; every trial is *screened* (short perplexity slice,
   short bench), its perplexity compared with the baseline's at the same settings.
   Asking stops at ``n_trials`` or when the time left would not cover one more trial plus
   the re-measurements and the recommendation.
4. **Re-measure**: the lowest-energy feasible candidates are measured again at the
   *full* stage (the bench protocol's defaults); only full-stage figures decide.
5. **Decide**: Pareto front (energy vs perplexity), ties where 95% intervals overlap, the
   recommendation (lowest energy within the budget, ties broken by quality then memory).
6. **Deliver**: the recommended model saved under ``recommended/`` and benched again from
   its files, ``optimize.json`` + ``config.json``, and the HTML/Markdown report.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from wattlm.bench.backends import backend_class
from wattlm.errors import WattlmError
from wattlm.report.records import OptimizeRecord, TrialRecord
from wattlm.search import study as st
from wattlm.search.candidate import Candidate, baseline_candidate
from wattlm.search.config import OptimizeConfig
from wattlm.search.evaluate import Evaluator, register_base_model
from wattlm.search.progress import SearchProgress, describe
from wattlm.search.space import SearchSpace
from wattlm.search.state import SearchState

STUDY_FILE = "study.json"
#: the peer: llama.cpp on the model's own GGUF file
PEER_BACKEND = "llamacpp"


def optimize(
    config: OptimizeConfig | None = None,
    *,
    out_dir: str | Path = "runs/optimize",
    progress: bool = True,
    evaluator: Evaluator | None = None,
    space: SearchSpace | None = None,
) -> OptimizeRecord:
    """Search for the lowest-energy configuration within the quality budget.

    Args:
        config: what to search; defaults to the embedded SmolLM2 and the default space.
        out_dir: run folder (``study.db``, ``trials/``, ``recommended/``,
            ``optimize.json``, reports). Re-running into the same folder resumes.
        progress: show the live view on stderr.
        evaluator: a picklable ``TrialSpec -> outcome`` callable replacing the real bench
            (tests); then no model is loaded and no recommended model is saved.
        space: a search space object instead of ``config.space``.

    Returns:
        The record written to ``optimize.json`` (see docs/result-format.md).
    """
    s = SearchState.create(
        config or OptimizeConfig(),
        Path(out_dir),
        progress=progress,
        evaluator=evaluator,
        space=space,
    )
    return run(s)


def run(s: SearchState) -> OptimizeRecord:
    """The steps of a search on ``s``, from the baseline to the written record."""
    from wattlm.search.loop import remeasure, search_loop
    from wattlm.search.record import finish

    _check_backends(s)
    _open(s)
    with SearchProgress(
        enabled=s.show, total=s.cfg.n_trials, deadline=s.deadline, unit=s.unit
    ) as s.ui:
        if s.real:
            s.ui.update(activity=f"loading {s.cfg.model}")
            _load_base(s)
        s.baseline = _baseline(s)
        s.peer = _peer(s)
        search_loop(s)
        remeasure(s)
        s.ui.update(activity="choosing and saving the recommendation")
        return finish(s)


# -- set-up -------------------------------------------------------------------------------
def _check_backends(s: SearchState) -> None:
    """Leave backends that are not installed out of a real search, with a note."""
    if s.real:
        for name, _ in s.space.backends:
            cls = backend_class(name)
            if not cls.is_available():
                reason = f"the {cls.requires} package is not installed ({cls.install_hint()})"
                s.space = s.space.without_backend(name, reason)
    s.notes.extend(s.space.notes)


def _open(s: SearchState) -> None:
    cfg = s.cfg
    s.out.mkdir(parents=True, exist_ok=True)
    fingerprint = cfg.study_fingerprint(s.space.to_dict())
    s.study_name = f"wattlm-optimize-{fingerprint}"
    storage = cfg.storage or f"sqlite:///{(s.out / 'study.db').resolve()}"
    marker = s.out / STUDY_FILE
    if marker.is_file():
        known = json.loads(marker.read_text(encoding="utf-8"))
        if known.get("study_name") != s.study_name:
            raise WattlmError(
                f"{s.out} holds another search (different options or space)",
                hint="pass a new --out, or the same options to resume that search",
            )
    from wattlm._files import write_json

    write_json(marker, {"study_name": s.study_name, "storage": storage})
    write_json(s.out / "config.json", cfg.to_dict())
    s.grid = s.space.candidates() if cfg.sampler == "grid" else []
    sampler = st.make_sampler(cfg.sampler, cfg.seed, len(s.grid))
    s.study = st.open_study(s.study_name, storage, sampler)
    s.storage = storage


def _load_base(s: SearchState) -> None:
    from wattlm.models.load import load_model

    s.base = load_model(s.cfg.model, device=s.cfg.device)
    if s.base.task != "causal-lm":
        raise WattlmError(f"optimize searches causal LMs; {s.cfg.model!r} is not one")
    register_base_model(s.cfg.model, s.cfg.device, s.base)


# -- baseline and peer --------------------------------------------------------------------
def _baseline(s: SearchState) -> TrialRecord:
    stored = s.study.user_attrs.get("baseline")
    if stored is not None:
        _show_baseline(s, stored)
        return stored
    cand = baseline_candidate(s.threads)
    s.ui.update(activity="baseline (float model, torch, batch 1): screen stage")
    spec = s.spec(0, cand, "screen")
    outcome, seconds = s.evaluate(spec)
    if outcome.get("error"):
        raise WattlmError(f"the baseline could not be measured: {outcome['error']}")
    s.baseline = s.make_record(0, cand, "screen", outcome, seconds)
    s.baseline["label"] = f"baseline: float model on torch · batch 1 · {_threads(s.threads)}"
    s.remember_quality(spec, outcome)
    s.ui.update(activity="baseline: full stage")
    spec = s.spec(0, cand, "full")
    full, full_seconds = s.evaluate(spec)
    if full.get("error"):
        raise WattlmError(f"the baseline could not be measured: {full['error']}")
    s.remember_quality(spec, full)
    full_rec = s.make_record(0, cand, "full", full, full_seconds)
    record: TrialRecord = {
        **s.baseline,
        "stage": "full",
        "metrics": full_rec["metrics"],
        "result_path": full_rec["result_path"],
        "screen_duration_s": round(seconds, 3),
        "full_duration_s": round(full_seconds, 3),
        "screen_timings_s": s.baseline["timings_s"],
        "timings_s": full_rec["timings_s"],
        "duration_s": round(seconds + full_seconds, 3),
    }
    s.study.set_user_attr("baseline", record)
    _show_baseline(s, record)
    return record


def _show_baseline(s: SearchState, rec: TrialRecord) -> None:
    s.ui.update(baseline=describe(rec, s.unit))


def _peer(s: SearchState) -> TrialRecord | None:
    if not s.cfg.peer:
        return None
    stored = s.study.user_attrs.get("peer")
    if stored is not None:
        return stored
    if s.real:
        peer = backend_class(PEER_BACKEND)
        if not peer.is_available():
            s.notes.append(f"no peer: llama.cpp ({peer.requires}) is not installed")
            return None
        if s.base is None or s.base.gguf_path is None:
            s.notes.append("no peer: the model is not a GGUF file llama.cpp could run as is")
            return None
        from wattlm.export.gguf_reader import check_gguf

        ftype = check_gguf(s.base.gguf_path).file_type_name or "GGUF"
    else:
        ftype = "Q4_1"
    cand = Candidate("none", {}, (), PEER_BACKEND, ftype.lower(), 1, s.threads)
    s.ui.update(activity=f"peer: llama.cpp on the model's own {ftype} file, batch 1")
    spec = s.spec(-1, cand, "full", peer=True)
    full_quality = s.study.user_attrs.get(st.quality_key("full", baseline_candidate(1)))
    if full_quality:  # the same weights as the baseline: the file, dequantized
        spec = dataclasses.replace(spec, quality=full_quality["quality"], quality_from=0)
    outcome, seconds = s.evaluate(spec)
    rec = s.make_record(-1, cand, "full", outcome, seconds)
    rec["number"] = None  # not a trial of the search
    rec["label"] = f"llama.cpp default ({ftype} file, batch 1)"
    rec["screen_metrics"] = None
    rec["params"] = {
        "file": ftype,
        "backend": PEER_BACKEND,
        "batch_size": 1,
        "threads": s.threads,
    }
    s.study.set_user_attr("peer", rec)
    return rec


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"
