"""``study.fail_stale_trials``: what a killed run left ``RUNNING`` is settled exactly once."""

import optuna
import pytest

from wattlm.search import study as st

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _grid_study(size: int = 4):
    sampler = st.make_sampler("grid", seed=0, grid_size=size)
    return optuna.create_study(sampler=sampler, directions=["minimize"])


def test_killed_after_its_record_is_told_from_the_record_not_asked_again():
    study = _grid_study()
    trial = study.ask()
    point = trial.suggest_categorical("candidate", [0, 1, 2, 3])
    trial.set_user_attr("record", {"number": 1, "value": 2.5})  # killed before tell
    told = []

    def finish(t, rec):
        told.append(rec)
        study.tell(t, [rec["value"]])

    assert st.fail_stale_trials(study, finish) == [0]
    assert told == [{"number": 1, "value": 2.5}]
    (only,) = study.get_trials()
    assert only.state == optuna.trial.TrialState.COMPLETE and only.params == {"candidate": point}
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_killed_mid_work_is_failed_and_its_point_asked_again():
    study = _grid_study()
    trial = study.ask()
    point = trial.suggest_categorical("candidate", [0, 1, 2, 3])
    assert st.fail_stale_trials(study) == [trial.number]
    assert study.get_trials()[0].state == optuna.trial.TrialState.FAIL
    again = study.ask()
    assert again.suggest_categorical("candidate", [0, 1, 2, 3]) == point


def test_grid_trial_killed_before_its_parameters_is_asked_at_its_grid_point():
    study = _grid_study()
    trial = study.ask()  # grid_id assigned, the kill lands before suggest
    grid_id = study.get_trials()[0].system_attrs["grid_id"]
    expected = study.sampler.grid_params(grid_id)
    assert st.fail_stale_trials(study) == [trial.number]
    again = study.ask()
    assert again.suggest_categorical("candidate", [0, 1, 2, 3]) == expected["candidate"]


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_non_grid_trial_killed_before_its_parameters_is_not_enqueued(name):
    study = optuna.create_study(sampler=st.make_sampler(name, seed=0), directions=["minimize"])
    study.ask()
    assert st.fail_stale_trials(study) == [0]
    assert study.get_trials()[0].state == optuna.trial.TrialState.FAIL
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
