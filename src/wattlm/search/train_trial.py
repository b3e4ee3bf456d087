"""One trial of ``wattlm train search``: what it is (:class:`TrainTrialSpec`) and how it runs
for real (:class:`TrainEvaluator`): fine-tune a copy of the model with the trial's options on
the training engine (:mod:`wattlm.training`), evaluating every few steps, until the target is
reached, the trial is pruned or its sample budget is spent.

Why the engine and not the ``finetune`` recipe: the recipe writes a run folder, saves the
model and evaluates before and after; a trial needs none of that, but needs to stop
mid-run the moment its evaluation reaches the target, which the recipe cannot. Calling the
engine (a lower layer) also keeps ``wattlm.search`` from importing ``wattlm.train`` (the
same layer). The trial trains exactly what ``wattlm train finetune`` trains: the model's own
loss (:class:`~wattlm.training.losses.TaskLoss`), the same loop, options and data.

The evaluator is picklable (Ray ships it to workers); each process loads the model, data
and evaluation set once and trains a fresh copy per trial.

Example:
    >>> spec = TrainTrialSpec(number=1, params={"batch_size": 8, "grad_accum": 2},
    ...                       target=0.85, higher=True, max_samples=1000,
    ...                       eval_every_samples=160)
    >>> spec.options().batch_size, spec.max_steps, spec.eval_every
    (8, 63, 10)
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

from wattlm.training.options import TrainOptions

#: per-process cache: (model, data, seq_len, ...) -> (loaded model, train data, eval set)
_BASE: dict[tuple, tuple[Any, Any, Any]] = {}


class _Stop(Exception):
    """Raised from the loop's step hook to end a trial (target reached or pruned)."""


@dataclass(frozen=True)
class TrainTrialSpec:
    """Everything one trial needs; picklable unless ``pruner`` is a local trial's callback
    (a Ray trial's, :class:`~wattlm.search.train_pruner.RayJudge`, travels with it)."""

    number: int
    params: dict[str, Any]
    target: float
    higher: bool
    max_samples: int
    eval_every_samples: int
    model: str = "minilm-l6"
    data: str = "movie-sentiment"
    task: str = "sequence-classification"
    seq_len: int = 128
    max_train_samples: int | None = None
    eval_max_samples: int | None = 500
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    meter: str = "auto"
    max_time_s: float | None = None
    recipe: str = "finetune"
    recipe_args: dict[str, Any] = field(default_factory=dict)
    best_energy_j: float | None = None
    pruner: Any = field(default=None, compare=False)

    @property
    def global_batch(self) -> int:
        p = self.params
        return int(p.get("batch_size", 16)) * int(p.get("grad_accum", 1))

    @property
    def max_steps(self) -> int:
        """The cap in optimizer steps: ``max_samples`` rounded up to whole steps."""
        return max(1, math.ceil(self.max_samples / self.global_batch))

    @property
    def eval_every(self) -> int:
        return max(1, round(self.eval_every_samples / self.global_batch))

    def options(self) -> TrainOptions:
        """The trial's training options (the cap as ``max_steps``; no logging, no epochs)."""
        return TrainOptions(
            **{**self.params, "max_steps": self.max_steps, "epochs": None,
               "seed": self.seed, "threads": self.threads, "device": self.device,
               "meter": self.meter, "log_every": 10**9, "max_time_s": self.max_time_s},
        )  # fmt: skip

    def monitor(self) -> Any:
        from wattlm.search.train_monitor import TrialMonitor

        return TrialMonitor(
            target=self.target,
            higher=self.higher,
            eval_every=self.eval_every,
            best_energy_j=self.best_energy_j,
            pruner=self.pruner,
            max_steps=self.max_steps,
        )


def failed(error: str, **extra: Any) -> dict[str, Any]:
    """The outcome of a trial that could not run."""
    return {"error": error, "stop": "failed", "energy_j": extra.pop("energy_j", 0.0),
            "eval_energy_j": 0.0, "curve": [], "energy_source": None, **extra}  # fmt: skip


def _base(spec: TrainTrialSpec) -> tuple[Any, Any, Any]:
    """The loaded model (with its classifier head, seeded), training data and eval set."""
    key = (spec.model, spec.data, spec.task, spec.seq_len, spec.max_train_samples,
           spec.eval_max_samples, spec.device, spec.seed)  # fmt: skip
    if key not in _BASE:
        import torch

        from wattlm.data.labelled import load_labelled
        from wattlm.models.load import load_model
        from wattlm.training.data import LABELLED, TEXT, build_train_data
        from wattlm.training.evaluate import load_eval_set
        from wattlm.training.options import DataConfig

        kind = LABELLED if spec.task == "sequence-classification" else TEXT
        kwargs: dict[str, Any] = {}
        if kind == LABELLED:
            labels = {y for _, y in load_labelled(spec.data, "train")}
            kwargs["num_labels"] = max(labels) + 1
        torch.manual_seed(spec.seed)  # a new head starts from the same weights in every trial
        lm = load_model(spec.model, task=spec.task, device=spec.device, **kwargs)
        tok = lm.tokenizer
        if tok.pad_token is None:  # batches of sentences are padded
            tok.pad_token = tok.eos_token
            lm.model.config.pad_token_id = tok.pad_token_id
        data = build_train_data(kind, spec.data, tok, spec.seq_len, spec.max_train_samples)
        dcfg = DataConfig(spec.data, seq_len=spec.seq_len, eval_max_samples=spec.eval_max_samples)
        _BASE.clear()  # one model per process
        _BASE[key] = (lm, data, load_eval_set(dcfg, kind, tok))
    return _BASE[key]


@dataclass(frozen=True)
class TrainEvaluator:
    """Runs a :class:`TrainTrialSpec` for real and returns its outcome (see
    :meth:`wattlm.search.train_monitor.TrialMonitor.outcome`, plus ``time_s``,
    ``energy_source``, ``trainable_params``, ``peak_rss_bytes`` and ``error``).

    ``parts(spec, base, data) -> (model, loss module)`` builds what a trial trains from the
    loaded base model (default: a copy of it and its task loss, i.e. fine-tuning); the
    ``distill`` recipe passes :func:`wattlm.train.search_parts.distill_parts`.
    """

    parts: Any = None

    def __call__(self, spec: TrainTrialSpec) -> dict[str, Any]:
        from wattlm.errors import WattlmError

        started = time.perf_counter()
        try:
            return {**self._run(spec), "time_s": time.perf_counter() - started}
        except WattlmError as err:
            return failed(err.message, time_s=time.perf_counter() - started)

    def _run(self, spec: TrainTrialSpec) -> dict[str, Any]:
        import torch

        from wattlm.measure.factory import make_meter
        from wattlm.models.load import LoadedModel
        from wattlm.training.evaluate import evaluate
        from wattlm.training.loop import LoopSpec, prepare_model, train_loop
        from wattlm.training.losses import TaskLoss
        from wattlm.training.optim import check_environment

        opts = spec.options()
        check_environment(opts, spec.device)
        if opts.threads is not None:
            torch.set_num_threads(opts.threads)
        base, data, eval_set = _base(spec)
        if self.parts is None:
            model = copy.deepcopy(base.model)
            lm = LoadedModel(model, base.tokenizer, base.spec, task=base.task)
            module = TaskLoss(model)
        else:
            lm, module = self.parts(spec, base, data)
            model = lm.model
        prepare_model(model, opts)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        meter = make_meter(opts.meter, device=spec.device)
        monitor = spec.monitor()
        last: dict[str, float] = {}

        def quality() -> float:
            meter.begin_window("eval")
            q = evaluate(lm, eval_set)["value"]
            last["eval_j"] = meter.end_window("eval").energy_j or 0.0
            return q

        sources: set[str] = set()

        def on_step(record: dict[str, Any]) -> None:
            if record["energy_j"] is None:
                raise _Stop("no energy figure")
            sources.add(record["energy_source"])
            stop = monitor.step(record["energy_j"], record["samples"], quality,
                                lambda: last.pop("eval_j", 0.0))  # fmt: skip
            if stop is not None:
                raise _Stop(stop)

        result = None
        try:
            result = train_loop(LoopSpec(module, data, opts, on_step=on_step, meter=meter))
        except _Stop as stop:
            if str(stop) == "no energy figure":
                return failed(
                    f"no energy figure from meter {opts.meter!r}", energy_source=meter.source
                )
        monitor.final(quality, lambda: last.pop("eval_j", 0.0))  # stopped by its time cap
        out = monitor.outcome()
        out.update(
            error=None,
            energy_source="+".join(sorted(sources)) or meter.source,
            trainable_params=trainable,
            peak_rss_bytes=result.peak_rss_bytes if result is not None else None,
        )
        return out
