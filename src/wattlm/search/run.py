"""``optimize``: the search from start to recommendation.

0. **Checks**, before anything is measured: the time budget must hold the baseline, the
   peer, one trial and the reserve (else one line, exit 2, with the time needed); the
   space is checked against the model and choices that cannot be built are dropped
   (listed in the record's ``search.dropped_choices``).
1. **Baseline** (trial 0): the float model on torch at batch 1, measured at both stages.
2. **Peer**: llama.cpp on the model's own GGUF file, batch 1, same threads ("llama.cpp
   default"), full stage; recorded apart, for the ratio. Once the recommendation is
   known, the peer is measured again at its batch size (the equal-batch ratio).
3. **Search**: ask/tell over the space; every trial is *screened* (short perplexity slice,
   short bench), its perplexity compared with the baseline's at the same settings.
   Asking stops at ``n_trials`` distinct configurations or when the time left would not cover one more trial plus
   the re-measurements and the recommendation.
4. **Re-measure**: the lowest-energy feasible candidates are measured again at the
   *full* stage (the bench protocol's defaults); only full-stage figures decide.
5. **Decide**: Pareto front (energy vs perplexity), ties where 95% intervals overlap, the
   recommendation (lowest energy within the budget, ties broken by quality then memory).
6. **Deliver**: the recommended model saved under ``recommended/`` and benched again from
   its files, ``optimize.json`` + ``config.json``, and the HTML/Markdown report.
"""

from __future__ import annotations

import json
from pathlib import Path

from wattlm.bench.backends import backend_class
from wattlm.errors import WattlmError
from wattlm.report.records import OptimizeRecord, TrialRecord
from wattlm.search import study as st
from wattlm.search.candidate import baseline_candidate
from wattlm.search.config import OptimizeConfig
from wattlm.search.evaluate import Evaluator, register_base_model
from wattlm.search.peer import PEER_BACKEND, measure_peer
from wattlm.search.progress import SearchProgress, describe
from wattlm.search.space import SearchSpace
from wattlm.search.state import SearchState

__all__ = ["PEER_BACKEND", "STUDY_FILE", "optimize", "run"]

STUDY_FILE = "study.json"


def optimize(
    config: OptimizeConfig | None = None,
    *,
    out_dir: str | Path = "runs/optimize",
    progress: bool = True,
    evaluator: Evaluator | None = None,
    space: SearchSpace | None = None,
    lines_to_stdout: bool = True,
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
        lines_to_stdout: where stdout is not a terminal, print plain progress lines there
            (off when stdout carries the record, ``--json``).

    Returns:
        The record written to ``optimize.json`` (see docs/result-format.md).
    """
    s = SearchState.create(
        config or OptimizeConfig(),
        Path(out_dir),
        progress=progress,
        evaluator=evaluator,
        space=space,
        lines_to_stdout=lines_to_stdout,
    )
    return run(s)


def run(s: SearchState) -> OptimizeRecord:
    """The steps of a search on ``s``, from the baseline to the written record."""
    from wattlm.search.budget import check_time_budget
    from wattlm.search.loop import remeasure, search_loop
    from wattlm.search.record import finish

    _check_backends(s)
    if s.real:
        check_time_budget(s.cfg)
    with SearchProgress(
        enabled=s.show,
        total=s.cfg.n_trials,
        deadline=s.deadline,
        unit=s.unit,
        lines_to_stdout=s.lines_to_stdout,
    ) as s.ui:
        if s.real:
            s.ui.stage(f"loading {s.cfg.model}")
            _load_base(s)
        _check_space(s)
        _open(s)
        s.baseline = _baseline(s)
        s.peer = _peer(s)
        s.ui.stage("search: screening configurations")
        search_loop(s)
        s.ui.stage("re-measuring the best candidates at the full stage")
        remeasure(s)
        s.ui.stage("choosing and saving the recommendation")
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


def _check_space(s: SearchState) -> None:
    """Drop the space's choices that cannot be built for the model (listed in the record).

    A real search reads the loaded model's shapes; a synthetic evaluator may offer
    ``model_shapes`` (a :class:`~wattlm.search.space_check.ModelShapes`) for tests.
    """
    from wattlm.search.space_check import ModelShapes, check_space

    if s.base is not None:
        shapes = ModelShapes.of(s.base.model)
    else:
        shapes = getattr(s.evaluator, "model_shapes", None)
    if shapes is None:
        return
    before = len(s.space.notes)
    s.space, s.dropped_choices = check_space(s.space, shapes)
    s.notes.extend(s.space.notes[before:])
    for note in s.space.notes[before:]:
        s.ui.stage(note)


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
    from wattlm.models.fingerprint import state_dict_sha256

    s.model_fingerprint = state_dict_sha256(s.base.model)  # the quality cache's key
    from wattlm.search.reference import ensure_reference

    s.ui.stage("the baseline's next-token distribution (for KL and top-1 agreement)")
    s.reference_path = str(
        ensure_reference(
            s.base, fingerprint=s.model_fingerprint, data=s.cfg.data, device=s.cfg.device
        )
    )


# -- baseline and peer --------------------------------------------------------------------
def _baseline(s: SearchState) -> TrialRecord:
    stored = s.study.user_attrs.get("baseline")
    if stored is not None:
        _show_baseline(s, stored)
        return stored
    cand = baseline_candidate(s.threads)
    s.ui.stage("baseline (float model, torch, batch 1): screen stage")
    spec = s.spec(0, cand, "screen")
    outcome, seconds = s.evaluate(spec)
    if outcome.get("error"):
        raise WattlmError(f"the baseline could not be measured: {outcome['error']}")
    s.baseline = s.make_record(0, cand, "screen", outcome, seconds)
    s.baseline["label"] = f"baseline: float model on torch · batch 1 · {_threads(s.threads)}"
    s.remember_quality(spec, outcome)
    s.ui.stage("baseline: full stage")
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
    return measure_peer(s, 1)


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"
