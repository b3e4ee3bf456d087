"""``train_search`` trials as Ray tasks: the same executor as ``optimize``."""

import json

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'wattlm[ray]')")

from wattlm.report.result import validate_result  # noqa: E402
from wattlm.search.train_config import TrainSearchConfig  # noqa: E402
from wattlm.search.train_search_run import train_search  # noqa: E402
from wattlm.search.train_space import TrainSpace  # noqa: E402
from wattlm.search.train_synthetic import SyntheticTrainEvaluator  # noqa: E402


@pytest.mark.slow
def test_two_ray_workers_train_trials_concurrently(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        space = TrainSpace.from_dict(
            {"dimensions": {"optimizer": ["adamw", "adagrad"], "batch_size": [16, 32]}}
        )
        cfg = TrainSearchConfig(
            target=0.85, n_trials=4, sampler="grid", ray="local", ray_workers=2, threads=1,
            max_samples=2048, eval_every_samples=256,
        )  # fmt: skip
        log = tmp_path / "log.jsonl"
        evaluator = SyntheticTrainEvaluator(delay_s=0.02, log_path=str(log))
        record = train_search(
            cfg, out_dir=tmp_path / "run", evaluator=evaluator, space=space, progress=False
        )
    finally:
        ray.shutdown()
    validate_result(record)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    searched = [e for e in entries if e["number"] > 0]
    assert len({e["pid"] for e in searched}) >= 2, "trials ran in two worker processes"
    assert any(
        a["start"] < b["end"] and b["start"] < a["end"]
        for i, a in enumerate(searched)
        for b in searched[i + 1 :]
    ), "two trials ran at the same time"
    assert len(record["trials"]) == 1 + 4 and record["recommended"] is not None
