"""The Optuna pruner's decision on a training trial's intermediate quality: one function
(``judge``) for local trials and for the actor that judges Ray trials."""

import optuna
import pytest

from wattlm.search.train_pruner import Judges, LocalJudge, RayJudge, StudyJudge, judge

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(storage=None, name=None, history=(0.7, 0.72, 0.68), step=256, higher=True):
    """A minimised study whose pruner (median, 3 start-up trials) has ``history``: complete
    trials that reported those qualities at ``step``."""
    study = optuna.create_study(
        study_name=name, storage=storage, pruner=optuna.pruners.MedianPruner(n_startup_trials=3)
    )
    for quality in history:
        t = study.ask()
        t.report(-quality if higher else quality, step)
        study.tell(t, 1.0)
    return study


def test_a_quality_below_the_median_is_pruned_and_reported_negated():
    study = _study()
    hopeless, good = study.ask(), study.ask()
    assert judge(hopeless, 256, 0.51, higher=True) is True
    assert judge(good, 256, 0.75, higher=True) is False
    values = {t.number: t.intermediate_values for t in study.trials}
    assert values[hopeless.number] == {256: pytest.approx(-0.51)}
    assert values[good.number] == {256: pytest.approx(-0.75)}


def test_a_perplexity_is_reported_as_is_and_lower_is_better():
    study = _study(history=(20.0, 21.0, 19.0), higher=False)
    worse, better = study.ask(), study.ask()
    assert judge(worse, 256, 30.0, higher=False) is True
    assert judge(better, 256, 15.0, higher=False) is False
    assert study.trials[worse.number].intermediate_values == {256: 30.0}


def test_no_verdict_before_the_pruners_start_up_trials():
    study = _study(history=(0.7, 0.72))  # two complete trials: median needs three
    assert judge(study.ask(), 256, 0.2, higher=True) is False


def test_local_and_actor_paths_give_the_same_verdicts(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = _study(storage=url, name="s")
    # the actor class, run in this process: loads the study from storage, judges by id
    actor = StudyJudge("s", url, "median")
    for quality, expected in ((0.51, True), (0.75, False)):
        local, remote = study.ask(), study.ask()
        assert LocalJudge(local, higher=True)(256, quality) is expected
        assert actor.judge(remote._trial_id, 256, quality, True) is expected
        # the driver's study sees what the actor reported on its trial
        seen = study.trials[remote.number].intermediate_values
        assert seen == {256: pytest.approx(-quality)}


def test_judges_make_the_callback_for_each_path():
    off = Judges("s", "sqlite:///x.db", "none", higher=True, remote=True)  # starts no actor
    assert off.for_trial(object()) is None and off.note() is None
    local = Judges("s", "sqlite:///x.db", "median", higher=False, remote=False)
    trial = object()
    assert local.for_trial(trial) == LocalJudge(trial, False)
    assert "median pruner" in local.note() and "this process" in local.note()
    local.close()


def test_the_ray_callback_pickles_small():
    import pickle

    judge_ = pickle.loads(pickle.dumps(RayJudge(actor=None, trial_id=7, higher=True)))
    assert (judge_.trial_id, judge_.higher) == (7, True)
