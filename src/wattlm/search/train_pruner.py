"""The Optuna pruner's verdict on a training trial's intermediate quality, for trials run in
this process and for trials run as Ray tasks.

Optuna's pruners (median, successive halving, Hyperband) judge an ``optuna.trial.Trial``:
report the quality at a step, then ask ``should_prune()``. A ``Trial`` holds the study and
its storage, so it cannot travel to a Ray worker. Both paths call one function,
:func:`judge`, on the real trial; only the transport differs:

- **local**: :class:`LocalJudge` holds the trial and calls :func:`judge` in this process;
- **Ray**: :class:`RayJudge` (small and picklable: a Ray actor handle, the trial's id and
  the direction) travels in the trial's spec; the worker calls it with ``(samples,
  quality)`` and waits for the answer of a :class:`StudyJudge` actor, which holds the study
  (loaded from its storage), builds the trial from its id and calls :func:`judge`. The
  actor runs on the driver's node (so a SQLite storage, the run folder's ``study.db``, is a
  local file for it) and takes no CPU from the trials.

The quality is reported as the value the study minimises (``-accuracy``; perplexity as
is) at step ``samples`` (training samples seen), so trials of different batch sizes are
compared at the same amount of training.

Example:
    >>> import optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    >>> done = study.ask(); done.report(-0.7, 256); _ = study.tell(done, -0.9)
    >>> trial = study.ask()
    >>> judge(trial, 256, 0.5, higher=True), study.trials[-1].intermediate_values
    (True, {256: -0.5})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def judge(trial: Any, samples: int, quality: float, *, higher: bool) -> bool:
    """Report ``quality`` after ``samples`` training samples to the Optuna ``trial`` and
    return the study's pruner's verdict (True: prune).

    ``higher``: whether higher quality is better (accuracy); the study minimises, so such a
    quality is reported negated.
    """
    trial.report(-quality if higher else quality, samples)
    return bool(trial.should_prune())


@dataclass(frozen=True)
class LocalJudge:
    """A local trial's pruner callback: ``(samples, quality) -> prune?`` on its own trial.

    Example:
        >>> class Trial:
        ...     def report(self, value, step): self.seen = (value, step)
        ...     def should_prune(self): return self.seen[0] > 10
        >>> LocalJudge(Trial(), higher=False)(64, 12.5)
        True
    """

    trial: Any
    higher: bool

    def __call__(self, samples: int, quality: float) -> bool:
        return judge(self.trial, samples, quality, higher=self.higher)


@dataclass(frozen=True)
class RayJudge:
    """A Ray trial's pruner callback: sends ``(samples, quality)`` to the
    :class:`StudyJudge` actor and returns its verdict. Picklable (Ray ships it in the spec).

    Example:
        >>> RayJudge(actor=None, trial_id=3, higher=True).trial_id
        3
    """

    actor: Any
    trial_id: int
    higher: bool

    def __call__(self, samples: int, quality: float) -> bool:
        import ray

        ref = self.actor.judge.remote(self.trial_id, int(samples), float(quality), self.higher)
        return bool(ray.get(ref))


class StudyJudge:
    """The Ray actor behind :class:`RayJudge`: the study, loaded from ``storage`` with the
    search's pruner (``none``, ``median``, ``successive-halving``, ``hyperband``), judging
    its trials by id.

    Example (in this process; the search runs it as a Ray actor):
        >>> import os, tempfile, optuna
        >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "study.db")
        >>> trial = optuna.create_study(study_name="s", storage=url).ask()
        >>> StudyJudge("s", url, "median").judge(trial._trial_id, 256, 0.5, higher=True)
        False
    """

    def __init__(self, study_name: str, storage: str, pruner: str) -> None:
        import optuna

        from wattlm.search.study import make_pruner

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.load_study(
            study_name=study_name,
            storage=_storage(storage),
            sampler=optuna.samplers.RandomSampler(),  # never asked: the driver samples
            pruner=make_pruner(pruner),
        )

    def judge(self, trial_id: int, samples: int, quality: float, higher: bool) -> bool:
        """Report a trial's quality and return the pruner's verdict (see :func:`judge`)."""
        import optuna

        return judge(optuna.trial.Trial(self._study, trial_id), samples, quality, higher=higher)


def _storage(url: str) -> Any:
    """``url`` as Optuna storage; SQLite waits for the driver's writes instead of failing."""
    if not url.startswith("sqlite:"):
        return url
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


class Judges:
    """Makes each search trial's pruner callback for ``wattlm train search``.

    ``remote`` (trials run as Ray tasks): starts one :class:`StudyJudge` actor on this
    node, and :meth:`for_trial` returns :class:`RayJudge` callbacks to it; otherwise
    :class:`LocalJudge` ones. ``pruner == "none"``: no callback at all.

    Example:
        >>> Judges("s", "sqlite:///study.db", "none", higher=True, remote=False).for_trial(1)
    """

    def __init__(
        self, study_name: str, storage: str, pruner: str, *, higher: bool, remote: bool
    ) -> None:
        self.pruner, self.higher, self.remote = pruner, higher, remote
        self._actor = None
        if pruner != "none" and remote:
            self._actor = _start_actor(study_name, storage, pruner)

    def for_trial(self, trial: Any) -> Any:
        """The callback for ``trial`` (an ``optuna.trial.Trial``), or ``None``."""
        if self.pruner == "none":
            return None
        if self._actor is not None:
            return RayJudge(self._actor, trial._trial_id, self.higher)
        return LocalJudge(trial, self.higher)

    def note(self) -> str | None:
        """What judged the trials, for the record's notes."""
        if self.pruner == "none":
            return None
        how = (
            "Ray trials report each evaluation to an actor on the driver's node that holds "
            "the study and asks the pruner"
            if self.remote
            else "in this process"
        )
        return (
            f"the Optuna {self.pruner} pruner judged every searched trial's intermediate "
            f"quality ({how}); trial 0, the default, is never pruned"
        )

    def close(self) -> None:
        if self._actor is not None:
            import ray

            ray.kill(self._actor)
            self._actor = None


def _start_actor(study_name: str, storage: str, pruner: str) -> Any:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    actor = ray.remote(StudyJudge).options(
        num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
    )
    return actor.remote(study_name, storage, pruner)
