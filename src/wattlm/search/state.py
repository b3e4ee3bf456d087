"""``SearchState``: everything one ``optimize`` run knows, passed to every step by type.

The driver (:mod:`wattlm.search.run`) creates it, the ask/tell loop
(:mod:`wattlm.search.loop`) and the end of the search (:mod:`wattlm.search.record`,
:mod:`wattlm.search.recommend`) read and extend it. Fields set during the run (the study,
the baseline, the live view) are declared here with their types; reading one before the
step that sets it is an ``AttributeError``, as it would be a bug.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattlm.search import study as st
from wattlm.search.candidate import Candidate
from wattlm.search.config import OptimizeConfig
from wattlm.search.evaluate import BenchEvaluator, Evaluator, TrialSpec, breakdown
from wattlm.search.metrics import OBJECTIVES
from wattlm.search.quality_budget import QualityBudget
from wattlm.search.space import SearchSpace, load_space

if TYPE_CHECKING:
    import optuna

    from wattlm.models.load import LoadedModel
    from wattlm.report.records import OptimizeMetrics, TrialRecord
    from wattlm.search.progress import SearchProgress

#: extra seconds a trial costs beyond its screen measurement (copy, compress, export)
TRIAL_OVERHEAD_S = 10.0
#: seconds kept for saving the recommended model, beyond its full-stage re-bench
RECOMMEND_OVERHEAD_S = 20.0


@dataclass(eq=False)
class SearchState:
    """The state of one search; see :func:`wattlm.search.run.optimize` for the steps.

    Example:
        >>> from wattlm.search.synthetic import SyntheticEvaluator
        >>> s = SearchState.create(OptimizeConfig(time_budget_s="none"), Path("runs/x"),
        ...                        evaluator=SyntheticEvaluator())
        >>> s.real, s.unit, s.time_left() is None
        (False, 'J/token', True)
    """

    cfg: OptimizeConfig
    out: Path
    evaluator: Evaluator
    space: SearchSpace
    #: whether trials are measured for real (no synthetic evaluator given)
    real: bool
    show: bool = True
    #: plain progress lines may go to stdout (off when stdout carries ``--json``)
    lines_to_stdout: bool = True
    started: float = field(default_factory=time.monotonic)
    notes: list[str] = field(default_factory=list)
    #: wall seconds of each screened trial so far
    durations: list[float] = field(default_factory=list)
    #: wall seconds of each candidate's full-stage measurement so far
    full_durations: list[float] = field(default_factory=list)
    #: each measured screened trial's full-stage wall time, predicted from its own
    #: screen breakdown (:func:`predict_full_s`): the reserve before any full stage ran
    full_guesses: list[float] = field(default_factory=list)
    #: seconds of quality scoring of each candidate's full stage so far
    full_quality_s: list[float] = field(default_factory=list)
    #: (screened objective, backend) of the best feasible screened trial so far
    leader: tuple[float, str] | None = None
    #: the baseline model (real searches only)
    base: LoadedModel | None = None
    stop_reason: str | None = None
    #: choices of the space that cannot be built for the model (see ``space_check``)
    dropped_choices: list[dict[str, Any]] = field(default_factory=list)
    #: the peer at the recommendation's batch size (set when the recommendation is known)
    peer_same_batch: TrialRecord | None = None
    #: SHA-256 of the baseline's weights (real searches): the on-disk quality cache's key
    model_fingerprint: str | None = None
    #: the baseline's cached next-token distribution (real searches): trials measure KL
    #: divergence and top-1 agreement against it (see :mod:`wattlm.search.reference`)
    reference_path: str | None = None

    # set while the search runs
    study: optuna.Study = field(init=False)
    study_name: str = field(init=False)
    storage: str = field(init=False)
    grid: list[Candidate] = field(init=False)
    ui: SearchProgress = field(init=False)
    baseline: TrialRecord = field(init=False)
    peer: TrialRecord | None = field(init=False)

    @classmethod
    def create(
        cls,
        cfg: OptimizeConfig,
        out: Path,
        *,
        progress: bool = True,
        evaluator: Evaluator | None = None,
        space: SearchSpace | None = None,
        lines_to_stdout: bool = True,
    ) -> SearchState:
        """A fresh state: the real bench evaluator unless ``evaluator`` is given."""
        return cls(
            cfg=cfg,
            out=out,
            evaluator=evaluator or BenchEvaluator(),
            space=space or load_space(cfg.space),
            real=evaluator is None,
            show=progress,
            lines_to_stdout=lines_to_stdout,
        )

    # -- derived from the config -----------------------------------------------------------
    @property
    def threads(self) -> int:
        """Threads of the baseline and the peer."""
        return self.cfg.resolved_threads

    @property
    def budget(self) -> QualityBudget:
        """The quality budget every trial is judged against."""
        return QualityBudget.of(self.cfg)

    @property
    def unit(self) -> str:
        """Unit of the objective (e.g. ``J/token``)."""
        return OBJECTIVES[self.cfg.objective][1]

    @property
    def deadline(self) -> float | None:
        """``time.monotonic()`` at which the time budget runs out (``None``: no budget)."""
        budget = self.cfg.time_budget_s
        return None if budget is None else self.started + budget

    # -- evaluation helpers ----------------------------------------------------------------
    def spec(
        self,
        number: int,
        cand: Candidate,
        stage: str,
        *,
        peer: bool = False,
        best_screen: float | None = None,
    ) -> TrialSpec:
        """What the evaluator needs to measure ``cand`` at ``stage`` (perplexity reused
        when the same weights were measured at that stage before).

        A screened trial (not the baseline, not the peer) also gets the screen's rungs
        (:mod:`wattlm.search.screen`): ``quality_limit`` from the baseline's screen
        perplexity, and ``stop_above`` = ``prune_factor`` × ``best_screen`` (the best
        feasible screened objective so far) when the objective is decode energy. At the
        full stage, ``quality_limit`` is the budget itself (no margin) and there is no
        early stop.
        """
        cfg = self.cfg
        quality_limit = stop_above = kl_limit = baseline_perplexity = None
        if stage == "full" and number > 0 and not peer:
            # quality is scored first at the full stage too: weights over the budget there
            # are infeasible whatever their energy, so their bench is not run
            kl_limit = cfg.kl_budget
            quality_limit = self.baseline_ppl("full") * (1.0 + cfg.budget)
        if stage == "screen" and number > 0 and not peer:
            kl_limit = cfg.kl_budget
            if cfg.quality_margin is not None and getattr(self, "baseline", None) is not None:
                increase = cfg.budget + cfg.quality_margin
                baseline_perplexity = self.baseline_ppl("screen")
                quality_limit = baseline_perplexity * (1.0 + increase)
            if cfg.prune_factor is not None and best_screen and cfg.objective == "decode-energy":
                stop_above = cfg.prune_factor * best_screen
        settings = cfg.screen if stage == "screen" else cfg.full
        cached = self.study.user_attrs.get(st.quality_key(stage, cand))
        disk_key = self._disk_quality_key(stage, cand)
        if cached is None and disk_key is not None:
            from wattlm.search.quality_cache import read_quality

            quality = read_quality(disk_key)
            cached = {"quality": quality, "from": 0} if quality else None
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
            out_dir=str(self.out / (_peer_folder(cand.batch_size) if peer else f"trials/{number}")),
            quality=cached["quality"] if cached else None,
            quality_from=cached["from"] if cached else None,
            peer=peer,
            cache_dir=str(self.out / "cache"),
            reference_path=self.reference_path,
            quality_limit=quality_limit,
            baseline_perplexity=baseline_perplexity,
            kl_limit=kl_limit,
            stop_above=stop_above,
        )

    def evaluate(self, spec: TrialSpec) -> tuple[dict[str, Any], float]:
        """The evaluator's outcome for ``spec`` and the wall seconds it took."""
        started = time.monotonic()
        outcome = self.evaluator(spec)
        return outcome, time.monotonic() - started

    def remember_quality(self, spec: TrialSpec, outcome: dict[str, Any]) -> None:
        """Keep a freshly measured perplexity for trials with the same weights (and the
        baseline's on disk, for later searches of the same model)."""
        if spec.quality is None and outcome.get("quality") and not outcome.get("error"):
            key = st.quality_key(spec.stage, spec.candidate)
            self.study.set_user_attr(key, {"quality": outcome["quality"], "from": spec.number})
            disk_key = self._disk_quality_key(spec.stage, spec.candidate)
            if disk_key is not None:
                from wattlm.search.quality_cache import write_quality

                write_quality(disk_key, outcome["quality"])
        elif spec.quality is not None and not outcome.get("error"):  # e.g. read from disk
            key = st.quality_key(spec.stage, spec.candidate)
            if key not in self.study.user_attrs:
                self.study.set_user_attr(key, {"quality": spec.quality, "from": spec.quality_from})

    def _disk_quality_key(self, stage: str, cand: Candidate) -> dict[str, Any] | None:
        """The on-disk cache key of the baseline's weights at ``stage`` (``None``: other
        weights, or no fingerprint)."""
        base = Candidate("none", {}, (), "torch")
        if self.model_fingerprint is None or cand.weights_key() != base.weights_key():
            return None
        cfg = self.cfg
        settings = cfg.screen if stage == "screen" else cfg.full
        return {
            "model": self.model_fingerprint,
            "data": cfg.data,
            "tokens": settings.ppl_max_tokens,
            "max_length": cfg.ppl_max_length,
            "stride": cfg.ppl_stride,
            "device": cfg.device,
            "fidelity": self.reference_path is not None,
        }

    def baseline_ppl(self, stage: str) -> float:
        """The baseline's perplexity at ``stage`` (what a trial's increase is relative to)."""
        key = "screen_metrics" if stage == "screen" else "metrics"
        return self.baseline[key]["perplexity"]  # type: ignore[literal-required,index]

    def make_record(
        self, number: int, cand: Candidate, stage: str, outcome: dict[str, Any], seconds: float
    ) -> TrialRecord:
        """A trial's record from one stage's outcome; feasibility against the baseline."""
        metrics: OptimizeMetrics = dict(outcome["metrics"])  # type: ignore[assignment]
        error = outcome.get("error")
        early_stop = outcome.get("early_stop") if error is None else None
        feasible = False
        if error is None and metrics.get("objective") is None and early_stop is None:
            error = "no energy figure (energy source unavailable)"
        if error is None and metrics.get("perplexity") is None:
            error = "no perplexity figure"
        if error is None and number != 0:
            increase = metrics["perplexity"] / self.baseline_ppl(stage) - 1.0
            metrics["perplexity_increase"] = increase
            feasible = self.budget.holds(metrics) and early_stop is None
        elif error is None:
            metrics["perplexity_increase"] = 0.0
            feasible = True
        state = "failed" if error else ("complete" if feasible else "infeasible")
        if early_stop is not None and early_stop.startswith("pruned"):
            state = "pruned"
        rec: TrialRecord = {
            "number": number,
            "label": cand.label(),
            "params": cand.params(),
            "stages": cand.effective_stages(),
            "backend": cand.backend,
            "qtype": cand.qtype,
            "batch_size": cand.batch_size,
            "threads": cand.threads,
            "state": state,
            "feasible": feasible,
            "stage": stage,
            "error": error,
            "early_stop": early_stop,
            "metrics": metrics,
            "screen_metrics": metrics if stage == "screen" else None,
            "pareto": False,
            "duration_s": round(seconds, 3),
            "timings_s": outcome.get("timings_s") or breakdown({}, seconds),
            "result_path": outcome.get("result_path"),
            "energy_source": outcome.get("energy_source"),
            "duplicate_of": None,
            "notes": list(outcome.get("notes") or []),
            "candidate": cand.to_dict(),
        }
        if outcome.get("heal") is not None:  # the healing cost of its weights (heal_cache)
            rec["heal"] = dict(outcome["heal"])
        return rec

    # -- time ------------------------------------------------------------------------------
    def estimate_trial_s(self) -> float:
        """Expected wall time of one screened trial: the mean so far, else the baseline's."""
        if self.durations:
            return sum(self.durations) / len(self.durations)
        return self.baseline.get("screen_duration_s", 30.0) + TRIAL_OVERHEAD_S

    def estimate_full_s(self) -> float:
        """Expected wall time of one full-stage measurement of a candidate: the mean of
        those done so far, else the baseline's full stage (torch, float32, the slowest
        configuration a search usually re-measures)."""
        if self.full_durations:
            return sum(self.full_durations) / len(self.full_durations)
        screen = self.baseline.get("screen_duration_s") or 30.0
        baseline = self.baseline.get("full_duration_s") or 3 * screen
        if self.full_guesses:  # the baseline's own full stage may have reused its quality
            return max(baseline, sum(self.full_guesses) / len(self.full_guesses))
        return baseline

    def candidate_full_s(self, rec: TrialRecord) -> float:
        """Expected wall time of screened trial ``rec``'s full stage: its own prediction
        from its screen breakdown (:func:`predict_full_s`; a perplexity reused from
        another trial is priced at the mean quality time of the full stages so far), never
        less than :meth:`estimate_full_s`. A 1-thread candidate's bench takes about twice
        a 2-thread one's: the mean of the others would underestimate it."""
        view = {**rec, "timings_s": rec.get("screen_timings_s") or rec.get("timings_s")}
        guess = predict_full_s(view, self.cfg.screen, self.cfg.full, self.full_quality_s)
        return max(self.estimate_full_s(), guess or 0.0)

    def note_screened(self, rec: TrialRecord) -> None:
        """Learn from a screened trial's breakdown what a full stage is likely to cost."""
        guess = predict_full_s(rec, self.cfg.screen, self.cfg.full)
        if guess is not None:
            self.full_guesses.append(guess)
        objective = (rec["metrics"].get("objective") or {}).get("median")
        leads = self.leader is None or (objective is not None and objective < self.leader[0])
        if rec["feasible"] and objective is not None and leads:
            self.leader = (objective, rec["backend"])

    def _leader_runs_gguf(self) -> bool:
        """Whether the best feasible screened trial so far runs a GGUF file (llama.cpp):
        its recommendation would be saved as a copy of the file its full stage measured."""
        from wattlm.bench.backends import backend_class

        return self.leader is not None and backend_class(self.leader[1]).runs_gguf

    def recommend_s(self) -> float:
        """Time kept for saving and re-benching the recommendation (real searches only):
        a full-stage bench without perplexity (it is reused: same weights) and the save;
        the save alone while the leader runs a GGUF file (a byte-identical copy of the file
        its full stage measured is not benched again)."""
        if not self.real:
            return 0.0
        if self._leader_runs_gguf():
            return RECOMMEND_OVERHEAD_S
        quality = (self.baseline.get("timings_s") or {}).get("quality_s", 0.0)
        return max(self.estimate_full_s() - quality, 0.5 * self.estimate_full_s()) + (
            RECOMMEND_OVERHEAD_S
        )

    def peer_same_batch_s(self) -> float:
        """Time kept for measuring the peer again at the recommendation's batch size: twice
        its batch-1 measurement (its perplexity is the baseline's, not measured again)."""
        if not self.cfg.peer or self.peer is None:
            return 0.0
        return 2.0 * float(self.peer.get("duration_s") or self.estimate_full_s())

    def reserve_s(self) -> float:
        """Time kept for re-measuring candidates, the peer at the recommendation's batch
        size, and saving + re-benching the recommendation."""
        return (
            self.cfg.remeasure * self.estimate_full_s()
            + self.peer_same_batch_s()
            + (self.recommend_s())
        )

    def time_left(self) -> float | None:
        """Seconds left of the time budget (``None``: no budget)."""
        deadline = self.deadline
        return None if deadline is None else deadline - time.monotonic()


def predict_full_s(
    rec: TrialRecord, screen: Any, full: Any, full_quality_s: list[float] | None = None
) -> float | None:
    """A screened trial's full-stage wall time, predicted from its own ``timings_s``:
    quality scales with the perplexity tokens, the bench with the tokens per run and the
    runs (warm-up + repeats, the full stage's midway count), the rest stays. ``None`` when
    the trial did not both score quality and run its whole bench (nothing to scale); a
    trial whose perplexity was reused (no quality time of its own) is priced at the mean
    of ``full_quality_s`` (full stages' quality seconds so far) when given.

    Example:
        >>> from wattlm.search.config import FULL, SCREEN
        >>> t = {"quality_s": 2.0, "served_quality_s": 0.0, "bench_s": 3.0, "other_s": 1.0}
        >>> rec = {"state": "complete", "timings_s": t,
        ...        "metrics": {"energy_j_per_token": {"n": 2}}}
        >>> round(predict_full_s(rec, SCREEN, FULL), 1)  # 1 + 2×4 + 3×4×5/3
        29.0
        >>> reused = {**rec, "timings_s": {**t, "quality_s": 0.0}}  # perplexity reused
        >>> predict_full_s(reused, SCREEN, FULL) is None
        True
        >>> round(predict_full_s(reused, SCREEN, FULL, [10.0]), 1)  # 1 + 10 + 20
        31.0
    """
    t = rec.get("timings_s") or {}
    energy = (rec.get("metrics") or {}).get("energy_j_per_token") or {}
    quality = t.get("quality_s", 0.0) + t.get("served_quality_s", 0.0)
    bench = t.get("bench_s", 0.0)
    scaled_quality = quality * full.ppl_max_tokens / screen.ppl_max_tokens
    if not quality and full_quality_s:
        scaled_quality = sum(full_quality_s) / len(full_quality_s)
    if rec.get("state") not in ("complete", "infeasible") or not scaled_quality or not bench:
        return None
    if not energy.get("n") or rec.get("early_stop"):
        return None
    runs = screen.warmup + energy["n"]
    full_runs = full.warmup + (full.min_repeats + full.repeats) / 2
    per_run = (full.prompt_tokens + full.new_tokens) / (screen.prompt_tokens + screen.new_tokens)
    rest = sum(v for k, v in t.items() if k not in ("quality_s", "served_quality_s", "bench_s"))
    return rest + scaled_quality + (bench * per_run * full_runs / runs)


def _peer_folder(batch_size: int) -> str:
    """``peer`` at batch 1 (as before), ``peer-batch8`` at the recommendation's batch 8."""
    return "peer" if batch_size == 1 else f"peer-batch{batch_size}"
