"""Trials as Ray tasks: a local Ray instance with 2 CPUs runs 2 trials at a time."""

import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'wattlm[ray]')")

from wattlm.report.result import validate_result  # noqa: E402
from wattlm.search import optimize  # noqa: E402
from wattlm.search.loop import tried  # noqa: E402
from wattlm.search.synthetic import SyntheticEvaluator  # noqa: E402

TORCH_SPACE = """
methods:
  none: []
  bf16: [{method: cast, dtype: bfloat16}]
  int8-weight: [{method: int8-weight}]
backends: {torch: {}}
batch_sizes: [1, 2]
threads: [1]
"""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_two_workers_run_trials_concurrently(
    local_ray, synthetic_space, synthetic_config, tmp_path
):
    log = tmp_path / "log.jsonl"
    space_threads_one = tmp_path / "one-thread.yaml"
    one_thread = Path(synthetic_space).read_text().replace("threads: [1, 2]", "threads: [1]")
    space_threads_one.write_text(one_thread.replace("threads: 2}", "threads: 1}"))
    cfg = synthetic_config(
        str(space_threads_one), n_trials=6, ray="local", ray_workers=2, sampler="random",
        threads=1,
    )  # fmt: skip
    evaluator = SyntheticEvaluator(delay_s=1.0, log_path=str(log))
    record = optimize(cfg, out_dir=tmp_path / "run", evaluator=evaluator, progress=False)
    validate_result(record)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    screens = [e for e in entries if e["stage"] == "screen" and e["number"] > 0]
    assert len({e["pid"] for e in screens}) >= 2, "trials ran in two worker processes"
    overlapping = any(
        a["start"] < b["end"] and b["start"] < a["end"]
        for i, a in enumerate(screens)
        for b in screens[i + 1 :]
    )
    assert overlapping, "two trials ran at the same time"
    assert tried(record) == 6
    assert record["recommended"] is not None


@pytest.mark.slow
def test_ray_workers_bench_a_tiny_model(
    local_ray, tiny_model_dir, text_file, tiny_config, tmp_path
):
    space = tmp_path / "torch.yaml"
    space.write_text(TORCH_SPACE)
    cfg = tiny_config(
        tiny_model_dir, str(text_file), str(space), n_trials=4, ray="local", ray_workers=2,
        sampler="grid", peer=False,
    )  # fmt: skip
    record = optimize(cfg, out_dir=tmp_path / "run", progress=False)
    validate_result(record)
    searched = [t for t in record["trials"] if t["number"] > 0]
    assert len(searched) == 4
    assert all(t["state"] != "failed" for t in searched), [t["error"] for t in searched]
    for t in searched:
        if t["duplicate_of"] is None:
            assert (tmp_path / "run" / t["result_path"]).is_file()
    assert (tmp_path / "run" / "recommended" / "result.json").is_file()
