"""``train_search`` resumes after SIGKILL: the same command continues the same study and
trains nothing it had finished (the default included)."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

SCRIPT = """
import sys
from wattlm.search.train_config import TrainSearchConfig
from wattlm.search.train_search_run import train_search
from wattlm.search.train_space import TrainSpace
from wattlm.search.train_synthetic import SyntheticTrainEvaluator

if __name__ == "__main__":
    out, log, delay = sys.argv[1:4]
    space = TrainSpace.from_dict({"dimensions": {"optimizer": ["adamw", "adagrad"],
                                                 "batch_size": [16, 32],
                                                 "train_layers": ["all", "lora"]}})
    cfg = TrainSearchConfig(target=0.85, n_trials=6, sampler="grid", max_samples=2048,
                            eval_every_samples=256, energy_prune=False)
    train_search(cfg, out_dir=out, space=space, progress=False,
                 evaluator=SyntheticTrainEvaluator(delay_s=float(delay), log_path=log))
"""


def _log(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_sigkill_then_rerun_keeps_finished_trials(tmp_path):
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    out, log = tmp_path / "run", tmp_path / "log.jsonl"
    args = [sys.executable, str(script), str(out), str(log)]
    proc = subprocess.Popen([*args, "0.01"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the default and two search trials
            if sum(e["number"] > 0 for e in _log(log)) >= 2:
                break
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            time.sleep(0.05)
        else:
            pytest.fail("no search trial finished within 90 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "train-search.json").exists()

    study_name = json.loads((out / "study.json").read_text())["study_name"]
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{out / 'study.db'}")
    done = {
        t.user_attrs["number"]: t.user_attrs["record"]
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    }
    assert done and "default" in study.user_attrs
    before = len(_log(log))

    rerun = subprocess.run([*args, "0"], capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    record = json.loads((out / "train-search.json").read_text())
    again = {e["number"] for e in _log(log)[before:]}
    assert not again & set(done), "finished trials were trained again"
    assert 0 not in again, "the default was trained again"
    trials = {t["number"]: t for t in record["trials"]}
    for number, rec in done.items():
        assert trials[number]["energy_j"] == rec["energy_j"]
    assert len(record["trials"]) == 1 + 6
    asked = [json.dumps(t["params"], sort_keys=True) for t in record["trials"][1:]]
    assert len(set(asked)) == 6  # the grid goes on where it stopped: no point twice
