"""Resume after SIGKILL: a second run continues the study and re-measures nothing it had."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from wattlm.search.loop import tried

SCRIPT = """
import sys
from wattlm.search import optimize
from wattlm.search.config import OptimizeConfig
from wattlm.search.synthetic import SyntheticEvaluator

if __name__ == "__main__":
    space, out, log, delay = sys.argv[1:5]
    cfg = OptimizeConfig(model="synthetic", space=space, n_trials=8, time_budget_s=None,
                         threads=2, remeasure=1)
    optimize(cfg, out_dir=out, evaluator=SyntheticEvaluator(delay_s=float(delay), log_path=log),
             progress=False)
"""


def _log(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_sigkill_then_rerun_keeps_completed_trials(synthetic_space, tmp_path):
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    out, log = tmp_path / "run", tmp_path / "log.jsonl"
    args = [sys.executable, str(script), synthetic_space, str(out), str(log)]
    proc = subprocess.Popen([*args, "0.4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for two search trials after the baseline
            if sum(e["stage"] == "screen" and e["number"] > 0 for e in _log(log)) >= 2:
                break
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            time.sleep(0.05)
        else:
            pytest.fail("no search trial finished within 60 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "optimize.json").exists()

    study_name = json.loads((out / "study.json").read_text())["study_name"]
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.load_study(study_name=study_name, storage=storage)
    # told trials: measured ones (COMPLETE, quality-first skips among them) and those the
    # screen stopped early as clear losers (PRUNED, their record kept)
    told = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = {
        t.user_attrs["number"]: t.user_attrs["record"]
        for t in study.get_trials(states=told)
        if "record" in t.user_attrs
    }
    assert done, "at least one search trial was told before the kill"
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    before = len(_log(log))

    rerun = subprocess.run([*args, "0"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    record = json.loads((out / "optimize.json").read_text())
    again = _log(log)[before:]
    remeasured = {e["number"] for e in again if e["stage"] == "screen"}
    assert not remeasured & set(done), "completed trials were measured again"
    assert not any(e["number"] == 0 for e in again), "the baseline was measured again"
    trials = {t["number"]: t for t in record["trials"]}
    for number, rec in done.items():
        assert trials[number]["screen_metrics"] == rec["screen_metrics"]
        if rec["state"] == "pruned":  # an early stop survives the kill as it was
            assert trials[number]["early_stop"] == rec["early_stop"]
    assert tried(record) == 8
    if running and "record" in running[0].user_attrs:  # killed between its record and tell
        study = optuna.load_study(study_name=study_name, storage=storage)
        assert study.trials[running[0].number].state in told  # told from the record
        number = running[0].user_attrs["number"]
        assert trials[number]["screen_metrics"] == running[0].user_attrs["record"]["screen_metrics"]
        assert number not in remeasured
    elif running:  # the trial the kill interrupted was failed and asked again
        assert any(n.startswith("resumed: 1 trial(s) interrupted") for n in record["notes"])
        study = optuna.load_study(study_name=study_name, storage=storage)
        assert study.trials[running[0].number].state == optuna.trial.TrialState.FAIL
    assert trials[record["recommended"]]["feasible"]
