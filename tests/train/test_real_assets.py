"""MiniLM on the movie-review sentences: a few real steps of each recipe (marked ``assets``)."""

import pytest

from wattlm.assets import is_cached
from wattlm.report.result import load_result
from wattlm.train import DataConfig, DistillConfig, FinetuneConfig, TrainOptions, distill, finetune

pytestmark = [pytest.mark.assets, pytest.mark.slow]  # ~30 s of CPU


@pytest.fixture(scope="module")
def needs_assets():
    for name in ("minilm-l6", "movie-sentiment"):
        if not is_cached(name):
            pytest.skip(f"asset {name} not fetched: run `wattlm assets fetch {name}`")


def test_minilm_finetune_then_distill_to_three_layers(needs_assets, tmp_path):
    data = DataConfig("movie-sentiment", seq_len=32, max_train_samples=64, eval_max_samples=32)
    options = TrainOptions(max_steps=2, batch_size=8, lr=1e-4, log_every=1000)
    teacher = finetune(
        FinetuneConfig(model="minilm-l6", data=data, options=options),
        tmp_path / "t",
        progress=False,
    )
    assert teacher["model"]["architecture"] == "BertForSequenceClassification"
    assert teacher["training"]["energy_source"].startswith(("estimate:", "rapl", "nvml"))
    cfg = DistillConfig(
        teacher=str(tmp_path / "t" / "model"), student="layers:3", data=data, options=options
    )
    student = distill(cfg, tmp_path / "s", progress=False)
    assert load_result(tmp_path / "s") == student
    assert student["student"]["kept_layers"] == [0, 2, 5]
    assert student["student"]["parameters"] < student["student"]["teacher_parameters"]
