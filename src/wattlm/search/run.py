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
import time
from pathlib import Path
from typing import Any

from wattlm.errors import WattlmError
from wattlm.search import study as st
from wattlm.search.candidate import Candidate, baseline_candidate
from wattlm.search.config import OptimizeConfig
from wattlm.search.evaluate import BenchEvaluator, TrialSpec, register_base_model
from wattlm.search.metrics import OBJECTIVES
from wattlm.search.progress import SearchProgress, describe
from wattlm.search.space import SearchSpace, load_space

STUDY_FILE = "study.json"
#: extra seconds a trial costs beyond its screen measurement (copy, compress, export)
TRIAL_OVERHEAD_S = 10.0


def optimize(
    config: OptimizeConfig | None = None,
    *,
    out_dir: str | Path = "runs/optimize",
    progress: bool = True,
    evaluator: Any = None,
    space: SearchSpace | None = None,
) -> dict[str, Any]:
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
    return _Search(config or OptimizeConfig(), Path(out_dir), progress, evaluator, space).run()


class _Search:
    def __init__(self, cfg, out, progress, evaluator, space) -> None:
        self.cfg: OptimizeConfig = cfg
        self.out: Path = out
        self.real = evaluator is None
        self.evaluator = evaluator or BenchEvaluator()
        self.space: SearchSpace = space or load_space(cfg.space)
        self.show = progress
        self.started = time.monotonic()
        self.deadline = None if cfg.time_budget_s is None else self.started + cfg.time_budget_s
        self.threads = cfg.resolved_threads
        self.notes: list[str] = []
        self.base: Any = None
        self.durations: list[float] = []
        self.unit = OBJECTIVES[cfg.objective][1]

    # -- set-up -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._check_backends()
        self._open()
        total = self.cfg.n_trials
        with SearchProgress(
            enabled=self.show, total=total, deadline=self.deadline, unit=self.unit
        ) as self.ui:
            if self.real:
                self.ui.update(activity=f"loading {self.cfg.model}")
                self._load_base()
            self.baseline = self._baseline()
            self.peer = self._peer()
            self._search()
            self._remeasure()
            self.ui.update(activity="choosing and saving the recommendation")
            from wattlm.search.record import finish

            return finish(self)

    def _check_backends(self) -> None:
        import importlib.util

        if self.real and importlib.util.find_spec("xllamacpp") is None:
            self.space = self.space.without_backend(
                "llamacpp",
                'the xllamacpp package is not installed (pip install "wattlm[llamacpp]")',
            )
        self.notes.extend(self.space.notes)

    def _open(self) -> None:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        fingerprint = cfg.study_fingerprint(self.space.to_dict())
        self.study_name = f"wattlm-optimize-{fingerprint}"
        storage = cfg.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"
        marker = self.out / STUDY_FILE
        if marker.is_file():
            known = json.loads(marker.read_text(encoding="utf-8"))
            if known.get("study_name") != self.study_name:
                raise WattlmError(
                    f"{self.out} holds another search (different options or space)",
                    hint="pass a new --out, or the same options to resume that search",
                )
        from wattlm._files import write_json

        write_json(marker, {"study_name": self.study_name, "storage": storage})
        write_json(self.out / "config.json", cfg.to_dict())
        self.grid = self.space.candidates() if cfg.sampler == "grid" else []
        sampler = st.make_sampler(cfg.sampler, cfg.seed, len(self.grid))
        self.study = st.open_study(self.study_name, storage, sampler)
        self.storage = storage

    def _load_base(self) -> None:
        from wattlm.models.load import load_model

        self.base = load_model(self.cfg.model, device=self.cfg.device)
        if self.base.task != "causal-lm":
            raise WattlmError(f"optimize searches causal LMs; {self.cfg.model!r} is not one")
        register_base_model(self.cfg.model, self.cfg.device, self.base)

    # -- evaluation helpers --------------------------------------------------------------
    def spec(self, number: int, cand: Candidate, stage: str, *, peer: bool = False) -> TrialSpec:
        cfg = self.cfg
        settings = cfg.screen if stage == "screen" else cfg.full
        cached = self.study.user_attrs.get(st.quality_key(stage, cand))
        return TrialSpec(
            number=number,
            candidate=cand,
            stage=stage,
            settings=settings,
            objective=cfg.objective,
            energy_view=cfg.energy_view,
            model=cfg.model,
            data=cfg.data,
            meter=cfg.meter,
            device=cfg.device,
            ppl_max_length=cfg.ppl_max_length,
            ppl_stride=cfg.ppl_stride,
            out_dir=str(self.out / ("peer" if peer else f"trials/{number}")),
            quality=cached["quality"] if cached else None,
            quality_from=cached["from"] if cached else None,
            peer=peer,
        )

    def evaluate(self, spec: TrialSpec) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        outcome = self.evaluator(spec)
        return outcome, time.monotonic() - started

    def remember_quality(self, spec: TrialSpec, outcome: dict[str, Any]) -> None:
        """Keep a freshly measured perplexity for trials with the same weights."""
        if spec.quality is None and outcome.get("quality") and not outcome.get("error"):
            key = st.quality_key(spec.stage, spec.candidate)
            self.study.set_user_attr(key, {"quality": outcome["quality"], "from": spec.number})

    def baseline_ppl(self, stage: str) -> float:
        key = "screen_metrics" if stage == "screen" else "metrics"
        return self.baseline[key]["perplexity"]

    def make_record(
        self, number: int, cand: Candidate, stage: str, outcome: dict[str, Any], seconds: float
    ) -> dict[str, Any]:
        """A trial's record from one stage's outcome; feasibility against the baseline."""
        metrics = dict(outcome["metrics"])
        error = outcome.get("error")
        feasible = False
        if error is None and metrics.get("objective") is None:
            error = "no energy figure (energy source unavailable)"
        if error is None and metrics.get("perplexity") is None:
            error = "no perplexity figure"
        if error is None and number != 0:
            increase = metrics["perplexity"] / self.baseline_ppl(stage) - 1.0
            metrics["perplexity_increase"] = increase
            feasible = increase <= self.cfg.budget + 1e-12
        elif error is None:
            metrics["perplexity_increase"] = 0.0
            feasible = True
        return {
            "number": number,
            "label": cand.label(),
            "params": cand.params(),
            "stages": cand.effective_stages(),
            "backend": cand.backend,
            "qtype": cand.qtype,
            "batch_size": cand.batch_size,
            "threads": cand.threads,
            "state": "failed" if error else ("complete" if feasible else "infeasible"),
            "feasible": feasible,
            "stage": stage,
            "error": error,
            "metrics": metrics,
            "screen_metrics": metrics if stage == "screen" else None,
            "pareto": False,
            "duration_s": round(seconds, 3),
            "result_path": outcome.get("result_path"),
            "energy_source": outcome.get("energy_source"),
            "duplicate_of": None,
            "notes": list(outcome.get("notes") or []),
            "candidate": cand.to_dict(),
        }

    # -- baseline and peer --------------------------------------------------------------
    def _baseline(self) -> dict[str, Any]:
        stored = self.study.user_attrs.get("baseline")
        if stored is not None:
            self._show_baseline(stored)
            return stored
        cand = baseline_candidate(self.threads)
        self.ui.update(activity="baseline (float model, torch, batch 1): screen stage")
        spec = self.spec(0, cand, "screen")
        outcome, seconds = self.evaluate(spec)
        if outcome.get("error"):
            raise WattlmError(f"the baseline could not be measured: {outcome['error']}")
        self.baseline = self.make_record(0, cand, "screen", outcome, seconds)
        self.baseline["label"] = (
            f"baseline: float model on torch · batch 1 · {_threads(self.threads)}"
        )
        self.remember_quality(spec, outcome)
        self.ui.update(activity="baseline: full stage")
        spec = self.spec(0, cand, "full")
        full, full_seconds = self.evaluate(spec)
        if full.get("error"):
            raise WattlmError(f"the baseline could not be measured: {full['error']}")
        self.remember_quality(spec, full)
        full_rec = self.make_record(0, cand, "full", full, full_seconds)
        record = {
            **self.baseline,
            "stage": "full",
            "metrics": full_rec["metrics"],
            "result_path": full_rec["result_path"],
            "screen_duration_s": round(seconds, 3),
            "full_duration_s": round(full_seconds, 3),
            "duration_s": round(seconds + full_seconds, 3),
        }
        self.study.set_user_attr("baseline", record)
        self._show_baseline(record)
        return record

    def _show_baseline(self, rec: dict[str, Any]) -> None:
        self.ui.update(baseline=describe(rec, self.unit))

    def _peer(self) -> dict[str, Any] | None:
        if not self.cfg.peer:
            return None
        stored = self.study.user_attrs.get("peer")
        if stored is not None:
            return stored
        if self.real:
            if not _has_xllamacpp():
                self.notes.append("no peer: llama.cpp (xllamacpp) is not installed")
                return None
            if self.base.gguf_path is None:
                self.notes.append("no peer: the model is not a GGUF file llama.cpp could run as is")
                return None
            from wattlm.export.gguf_reader import check_gguf

            ftype = check_gguf(self.base.gguf_path).file_type_name or "GGUF"
        else:
            ftype = "Q4_1"
        cand = Candidate("none", {}, (), "llamacpp", ftype.lower(), 1, self.threads)
        self.ui.update(activity=f"peer: llama.cpp on the model's own {ftype} file, batch 1")
        spec = self.spec(-1, cand, "full", peer=True)
        full_quality = self.study.user_attrs.get(st.quality_key("full", baseline_candidate(1)))
        if full_quality:  # the same weights as the baseline: the file, dequantized
            spec = dataclasses.replace(spec, quality=full_quality["quality"], quality_from=0)
        outcome, seconds = self.evaluate(spec)
        rec = self.make_record(-1, cand, "full", outcome, seconds)
        rec["number"] = None  # not a trial of the search
        rec["label"] = f"llama.cpp default ({ftype} file, batch 1)"
        rec["screen_metrics"] = None
        rec["params"] = {
            "file": ftype,
            "backend": "llamacpp",
            "batch_size": 1,
            "threads": self.threads,
        }
        self.study.set_user_attr("peer", rec)
        return rec

    # -- the ask/tell loop --------------------------------------------------------------
    def _search(self) -> None:
        from wattlm.search.loop import search_loop

        search_loop(self)

    def estimate_trial_s(self) -> float:
        """Expected wall time of one screened trial: the mean so far, else the baseline's."""
        if self.durations:
            return sum(self.durations) / len(self.durations)
        return self.baseline.get("screen_duration_s", 30.0) + TRIAL_OVERHEAD_S

    def estimate_full_s(self) -> float:
        """Expected wall time of one full-stage measurement: a screened trial's, scaled by
        how much longer the baseline's full stage took than its screen stage."""
        screen = self.baseline.get("screen_duration_s") or 30.0
        ratio = max(1.0, (self.baseline.get("full_duration_s") or 2 * screen) / screen)
        return ratio * self.estimate_trial_s()

    def reserve_s(self) -> float:
        """Time kept for re-measuring candidates and saving + re-benching the recommendation."""
        recommend = self.estimate_full_s() + 20.0 if self.real else 0.0
        return self.cfg.remeasure * self.estimate_full_s() + recommend

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _remeasure(self) -> None:
        from wattlm.search.loop import remeasure

        remeasure(self)


def _has_xllamacpp() -> bool:
    import importlib.util

    return importlib.util.find_spec("xllamacpp") is not None


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"
