"""``train_search``: search training options for the least energy to a target quality.

1. **Checks** before any training: the target is reachable by definition (accuracy ≤ 1,
   perplexity > 1), the space is valid, LoRA has modules to adapt on this model.
2. **Default** (trial 0): ``wattlm train finetune``'s defaults for every searched option,
   measured in the same run (never pruned), for the ratio.
3. **Search**: an Optuna study (``study.py``: the same sampler choice, storage, resume and
   stale-trial handling as ``wattlm optimize``) asks for options; each trial trains until
   its evaluation reaches the target (*cost to target*: the joules spent to get there), its
   sample budget runs out (infeasible), or it is pruned (:mod:`.train_monitor`). Trials run
   in this process or as Ray tasks (``executors.py``); the Optuna pruner judges both alike
   (``train_pruner.py``: a Ray trial reports to an actor holding the study). Pruned
   trials' joules count in the search's own cost.
4. **Decide and deliver** (:mod:`.train_record`): the recommendation and ties by
   ``pareto.py``'s rules, the Pareto front of energy vs quality, the ratio to the default,
   what the search cost and after how many training runs it pays back, a ready
   ``wattlm train finetune …`` command, ``train-search.json`` and the reports.

Re-running the same command into the same ``--out`` resumes the study (after a SIGKILL
too): finished trials are kept, a trial left running is asked again.

Example:
    >>> from wattlm.search.train_config import TrainSearchConfig
    >>> from wattlm.search.train_synthetic import SyntheticTrainEvaluator
    >>> cfg = TrainSearchConfig(target=0.8, n_trials=4, space="train-quick", sampler="random")
    >>> rec = train_search(cfg, out_dir="runs/ts", evaluator=SyntheticTrainEvaluator(),
    ...                    progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from wattlm.search import study as st
from wattlm.search.train_config import TrainSearchConfig
from wattlm.search.train_space import TrainSpace, load_train_space
from wattlm.search.train_trial import TrainTrialSpec

RESULT_FILE = "train-search.json"


def train_search(
    config: TrainSearchConfig,
    *,
    out_dir: str | Path = "runs/train-search",
    progress: bool = True,
    evaluator: Any = None,
    space: TrainSpace | None = None,
    parts: Any = None,
) -> dict[str, Any]:
    """Search ``config.space`` for the least energy to ``config.target``.

    Args:
        config: what to search and for what target.
        out_dir: run folder (``study.db``, ``train-search.json``, ``report.html``/``.md``);
            re-running into it resumes.
        progress: show progress on stderr.
        evaluator: a picklable ``TrainTrialSpec -> outcome`` callable replacing real
            training (tests: :class:`~wattlm.search.train_synthetic.SyntheticTrainEvaluator`).
        space: a space object instead of ``config.space``.
        parts: what a trial trains (see :class:`~wattlm.search.train_trial.TrainEvaluator`);
            the ``distill`` recipe needs :func:`wattlm.train.search_parts.distill_parts`.

    Returns:
        The record written to ``train-search.json``.
    """
    if config.recipe == "distill" and evaluator is None and parts is None:
        from wattlm.errors import WattlmError

        raise WattlmError(
            "a distill search needs the recipe's parts",
            hint="pass parts=wattlm.train.search_parts.distill_parts "
            "(wattlm train search --recipe distill does)",
        )
    return _TrainSearch(config, Path(out_dir), progress, evaluator, space, parts).run()


def label(params: dict[str, Any]) -> str:
    """``adamw · lr 1e-04 · batch 16×1 · fp32 · all layers`` (searched options only).

    Example:
        >>> label({"optimizer": "sgd", "lr": 3e-4, "batch_size": 32, "train_layers": "lora"})
        'sgd · lr 3e-04 · batch 32 · lora'
    """
    parts = []
    for key, value in params.items():
        if key == "lr":
            parts.append(f"lr {value:.0e}")
        elif key == "batch_size":
            parts.append(f"batch {value}")
        elif key == "grad_accum":
            parts.append(f"accum {value}")
        elif key == "warmup_steps":
            parts.append(f"warm-up {value}")
        elif key == "gradient_checkpointing":
            parts.append("grad ckpt" if value else "no ckpt")
        elif key == "train_layers" and value == "all":
            parts.append("all layers")
        elif key == "lora_rank":
            parts.append(f"rank {value}")
        else:
            parts.append(str(value))
    return " · ".join(parts) or "defaults"


class _TrainSearch:
    def __init__(self, cfg, out, progress, evaluator, space, parts=None) -> None:
        from wattlm.search.train_trial import TrainEvaluator

        self.cfg: TrainSearchConfig = cfg
        self.out: Path = out
        self.real = evaluator is None
        self.evaluator = evaluator or TrainEvaluator(parts)
        self.space: TrainSpace = space or load_train_space(cfg.space)
        self.show = progress
        self.started = time.monotonic()
        self.notes: list[str] = []

    # -- set-up ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from wattlm.search.progress import SearchProgress
        from wattlm.search.train_record import finish

        self._check()
        self._open()
        with SearchProgress(
            enabled=self.show, total=self.cfg.n_trials, deadline=None, unit="J to target"
        ) as self.ui:
            self.default = self._default()
            self._loop()
            self.ui.update(activity="deciding")
        return finish(self)

    def _check(self) -> None:
        from wattlm.training.data import LABELLED, data_kind

        cfg = self.cfg
        kind = data_kind(cfg.data)
        self.metric = cfg.metric_for(kind)
        cfg.check_target(self.metric)
        self.higher = cfg.higher_is_better(self.metric)
        self.task = "sequence-classification" if kind == LABELLED else "causal-lm"
        for precision in ("bf16", "fp16"):
            if precision in self.space.values("precision"):
                from wattlm.measure.precision_support import emulated_precision_warning

                line = emulated_precision_warning(precision, device=cfg.device)
                if line is not None:  # kept in the space: the search measures what it costs
                    self.notes.append(f"{line} ({precision} trials stay in the search)")
        if self.real and "lora" in self.space.values("train_layers"):
            from wattlm.search.train_trial import _base
            from wattlm.training.layers import check_lora

            base, _, _ = _base(self.spec(0, {}))
            check_lora(base.model, f"model {cfg.model!r}")

    def _open(self) -> None:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.study_name = f"wattlm-train-search-{cfg.fingerprint(self.space.to_dict())}"
        self.storage = cfg.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"
        st.claim_folder(self.out, self.study_name, self.storage)
        from wattlm._files import write_json

        write_json(self.out / "config.json", cfg.to_dict())
        self.grid = self.space.grid() if cfg.sampler == "grid" else []
        sampler = st.make_sampler(cfg.sampler, cfg.seed, len(self.grid))
        self.study = st.open_study(
            self.study_name,
            self.storage,
            sampler,
            directions=("minimize",),
            pruner=st.make_pruner(cfg.pruner),
        )

    # -- trials ---------------------------------------------------------------------------
    def spec(self, number: int, params: dict[str, Any], trial: Any = None) -> TrainTrialSpec:
        cfg = self.cfg
        judges = getattr(self, "judges", None)
        pruner = judges.for_trial(trial) if trial is not None and judges is not None else None
        return TrainTrialSpec(
            number=number,
            params=dict(params),
            target=cfg.target,
            higher=getattr(self, "higher", True),
            max_samples=cfg.max_samples,
            eval_every_samples=cfg.eval_every_samples,
            max_time_s=cfg.max_trial_s,
            recipe=cfg.recipe,
            recipe_args=self._recipe_args(),
            model=cfg.model,
            data=cfg.data,
            task=getattr(self, "task", "sequence-classification"),
            seq_len=cfg.seq_len,
            max_train_samples=cfg.max_train_samples,
            eval_max_samples=cfg.eval_max_samples,
            seed=cfg.seed,
            threads=cfg.threads,
            device=cfg.device,
            meter=cfg.meter,
            best_energy_j=self._best_energy_j(number) if number else None,
            pruner=pruner,
        )

    def _recipe_args(self) -> dict[str, Any]:
        cfg = self.cfg
        if cfg.recipe != "distill":
            return {}
        return {"student": cfg.student, "temperature": cfg.temperature, "alpha": cfg.alpha,
                "data": cfg.data}  # fmt: skip

    def _best_energy_j(self, number: int) -> float | None:
        if not self.cfg.energy_prune:
            return None
        done = [getattr(self, "default", None), *self._records.values()]
        pool = [r for r in done if r is not None and r["feasible"]]
        return min((r["energy_to_target_j"] for r in pool), default=None)

    def record(self, spec: TrainTrialSpec, outcome: dict[str, Any], seconds: float) -> dict:
        """A trial's record from its outcome."""
        error = outcome.get("error")
        stop = outcome.get("stop", "failed")
        state = {"reached": "reached", "cap": "not_reached", "pruned": "pruned"}.get(stop)
        best = outcome.get("quality_best")
        if best is None and not error and stop != "pruned":  # pruned on energy spent: fine
            error, state = "no evaluation ran", None
        return {
            "number": spec.number,
            "label": label(spec.params),
            "params": dict(spec.params),
            "state": "failed" if error or state is None else state,
            "feasible": not error and stop == "reached",
            "error": error,
            "energy_to_target_j": outcome.get("energy_to_target_j") if not error else None,
            "energy_j": float(outcome.get("energy_j") or 0.0),
            "eval_energy_j": float(outcome.get("eval_energy_j") or 0.0),
            "steps": int(outcome.get("steps") or 0),
            "samples": int(outcome.get("samples") or 0),
            "quality_best": best,
            "quality_last": outcome.get("quality_last"),
            "curve": list(outcome.get("curve") or []),
            "prune_reason": outcome.get("prune_reason"),
            "energy_source": outcome.get("energy_source"),
            "trainable_params": outcome.get("trainable_params"),
            "peak_rss_bytes": outcome.get("peak_rss_bytes"),
            "duration_s": round(seconds, 3),
            "pareto": False,
        }

    def _run_now(self, spec: TrainTrialSpec) -> dict[str, Any]:
        started = time.monotonic()
        outcome = self.evaluator(spec)
        return self.record(spec, outcome, time.monotonic() - started)

    def _default(self) -> dict[str, Any]:
        stored = self.study.user_attrs.get("default")
        if stored is not None:
            return stored
        self._records: dict[int, dict[str, Any]] = {}
        self.ui.update(activity="the defaults of wattlm train finetune (trial 0)")
        rec = self._run_now(self.spec(0, self.space.default_point()))
        rec["label"] = "default: " + rec["label"]
        self.study.set_user_attr("default", rec)
        self.ui.log(self.line(rec))
        return rec

    def line(self, rec: dict[str, Any]) -> str:
        """One line per finished trial."""
        head = f"#{rec['number']} {rec['label']}"
        if rec["state"] == "failed":
            return f"{head}: failed ({rec['error']})"
        q = rec["quality_best"]
        shown = f"{self.metric} {q:.4g}" if q is not None else "not evaluated"
        if rec["feasible"]:
            return f"{head}: {rec['energy_to_target_j']:.4g} J to target ({shown})"
        if rec["state"] == "pruned":
            return f"{head}: pruned after {rec['energy_j']:.4g} J ({rec['prune_reason']})"
        return f"{head}: target not reached in {rec['samples']} samples, {shown}"

    def _best_line(self) -> str | None:
        pool = [r for r in [self.default, *self._records.values()] if r["feasible"]]
        if not pool:
            return None
        return self.line(min(pool, key=lambda r: r["energy_to_target_j"]))

    def _tell(self, trial: Any, rec: dict[str, Any]) -> None:
        import optuna

        trial.set_user_attr("record", rec)
        states = optuna.trial.TrialState
        if rec["state"] == "failed":
            self.study.tell(trial, state=states.FAIL)
            return
        if rec["state"] == "pruned":
            self.study.tell(trial, state=states.PRUNED)
            return
        q = rec["quality_best"]
        gap = self.cfg.target - q if self.higher else q - self.cfg.target
        trial.set_constraint("target_gap", gap)
        value = rec["energy_to_target_j"] if rec["feasible"] else rec["energy_j"]
        self.study.tell(trial, [value])

    def _enqueue_start(self) -> None:
        study = self.study
        if study.user_attrs.get("start_enqueued"):
            return
        for point in self.space.start:
            if self.grid:
                full = {**self.space.default_point(), **point}
                index = [i for i, g in enumerate(self.grid) if g == full]
                if index:
                    study.enqueue_trial({"candidate": index[0]})
            else:
                study.enqueue_trial(dict(point))
        study.set_user_attr("start_enqueued", True)

    def _suggest(self, trial: Any) -> dict[str, Any]:
        if self.grid:
            return self.grid[trial.suggest_categorical("candidate", list(range(len(self.grid))))]
        return self.space.suggest(trial)

    def _loop(self) -> None:
        from wattlm.search.executors import LocalExecutor, make_executor
        from wattlm.search.train_pruner import Judges

        study = self.study
        self._enqueue_start()
        stale = st.fail_stale_trials(study, self._tell)
        if stale:
            self.notes.append(
                f"resumed: {len(stale)} trial(s) interrupted by an earlier run: "
                "each told from its saved record, or asked again"
            )
        self._records = {
            n: r for n, r in st.finished_records(study).items() if n > 0
        }  # fmt: skip
        limit = min(self.cfg.n_trials, len(self.grid)) if self.grid else self.cfg.n_trials
        self.ui.update(done=len(self._records), best=self._best_line())
        executor = make_executor(self.cfg.ray, self.cfg.ray_workers, self.cfg.threads or 1)
        # the pruner's callbacks; Ray trials report through an actor holding the study
        remote = not isinstance(executor, LocalExecutor)
        self.judges = Judges(
            self.study_name, self.storage, self.cfg.pruner, higher=self.higher, remote=remote
        )
        note = self.judges.note()
        if note is not None:
            self.notes.append(note)
        inflight: dict[Any, tuple[Any, TrainTrialSpec, float]] = {}
        try:
            while True:
                while len(inflight) < executor.capacity and (
                    len(self._records) + len(inflight) < limit
                ):
                    trial = study.ask()
                    number = trial.number + 1
                    trial.set_user_attr("number", number)
                    spec = self.spec(number, self._suggest(trial), trial)
                    inflight[executor.submit(self.evaluator, spec)] = (
                        trial, spec, time.monotonic(),
                    )  # fmt: skip
                    self.ui.update(activity=f"#{number} {label(spec.params)}")
                if not inflight:
                    break
                for handle, outcome in executor.wait(list(inflight)):
                    trial, spec, started = inflight.pop(handle)
                    if outcome.get("metrics") is not None and "stop" not in outcome:
                        outcome = {**outcome, "stop": "failed"}  # a Ray failure outcome
                    rec = self.record(spec, outcome, time.monotonic() - started)
                    self._tell(trial, rec)
                    self._records[rec["number"]] = rec
                    self.ui.log(self.line(rec))
                    self.ui.update(done=len(self._records), best=self._best_line())
        finally:
            executor.close()
            self.judges.close()

    def records(self) -> list[dict[str, Any]]:
        """Every trial, the default first."""
        return [self.default, *(self._records[n] for n in sorted(self._records))]
