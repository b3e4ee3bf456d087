"""Fine-tuning end to end on tiny models; bad inputs fail before training."""

import pytest
import torch

from wattlm.compress import compress_
from wattlm.compress.prune import MagnitudePruneConfig
from wattlm.errors import WattlmError
from wattlm.models.load import load_model, save_model
from wattlm.report.result import load_result
from wattlm.testing.tiny import tiny_causal_lm, tiny_classifier
from wattlm.train.config import FinetuneConfig
from wattlm.train.finetuning import finetune

from .conftest import data_cfg, opts, toy_rows, write_jsonl


@pytest.fixture
def clf_dir(tmp_path):
    return str(save_model(tiny_classifier(), tmp_path / "tiny-clf"))


def test_classifier_run_writes_a_valid_result_and_a_loadable_model(
    tmp_path, labelled_file, clf_dir
):
    cfg = FinetuneConfig(
        model=clf_dir,
        data=data_cfg(labelled_file, eval_max_samples=None),
        options=opts(max_steps=30, batch_size=8, lr=3e-3, schedule="constant"),
    )
    result = finetune(cfg, tmp_path / "run", progress=False)
    assert load_result(tmp_path / "run") == result  # valid against the schema, as written
    assert (tmp_path / "run" / "config.json").read_text().count('"recipe": "finetune"') == 1
    q = result["quality"]
    assert q["before"]["metric"] == q["after"]["metric"] == "accuracy"
    assert q["after"]["value"] > q["before"]["value"]
    assert q["after"]["value"] >= 0.9  # the toy labels follow the words
    trained = load_model(str(tmp_path / "run" / "model"), task="sequence-classification")
    assert result["model"]["fingerprint_sha256"] == trained.describe()["fingerprint_sha256"]
    assert result["options"]["optimizer"] == "adamw" and result["recipe"] == "finetune"


def test_causal_lm_run_reports_perplexity(tmp_path, text_file):
    cfg = FinetuneConfig(model="tiny", data=data_cfg(str(text_file), seq_len=16), options=opts())
    result = finetune(cfg, tmp_path / "run", model=tiny_causal_lm(), progress=False)
    assert result["quality"]["after"]["metric"] == "perplexity"
    assert result["quality"]["after"]["tokens"] > 0
    assert result["training"]["tokens"] == 3 * 4 * 16


def test_data_without_labels_for_a_classifier(tmp_path, text_file, clf_dir):
    cfg = FinetuneConfig(model=clf_dir, data=data_cfg(str(text_file)), options=opts())
    with pytest.raises(WattlmError, match="data without labels for a classifier"):
        finetune(cfg, tmp_path / "run", progress=False)
    cfg = FinetuneConfig(
        model="tiny", data=data_cfg(str(text_file)), options=opts(), task="sequence-classification"
    )
    with pytest.raises(WattlmError, match="data without labels for a classifier"):
        finetune(cfg, tmp_path / "run", model=tiny_causal_lm(), progress=False)
    assert not (tmp_path / "run").exists()


def test_label_count_mismatch(tmp_path, clf_dir, labelled_file):
    three = write_jsonl(
        tmp_path / "three.jsonl",
        [{"text": r["text"], "label": i % 3} for i, r in enumerate(toy_rows())],
    )
    cfg = FinetuneConfig(model=clf_dir, data=data_cfg(three), options=opts())
    with pytest.raises(
        WattlmError, match="label count mismatch: the model has 2 classes, the data 3"
    ):
        finetune(cfg, tmp_path / "run", progress=False)
    cfg = FinetuneConfig(model="tiny", data=data_cfg(labelled_file), options=opts())
    with pytest.raises(WattlmError, match="label count mismatch"):
        finetune(cfg, tmp_path / "run", model=tiny_classifier(num_labels=3), progress=False)
    assert not (tmp_path / "run").exists()


def test_out_folder_must_be_new(tmp_path, labelled_file):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    cfg = FinetuneConfig(model="tiny", data=data_cfg(labelled_file), options=opts())
    with pytest.raises(WattlmError, match="exists and is not empty"):
        finetune(cfg, tmp_path / "run", model=tiny_classifier(), progress=False)


def _pruned():
    lm = tiny_causal_lm()
    compress_(lm.model, MagnitudePruneConfig(sparsity=0.5))
    return lm


def test_keep_sparsity_heals_without_losing_zeros(tmp_path, text_file):
    cfg = FinetuneConfig(
        model="tiny",
        data=data_cfg(str(text_file), seq_len=16),
        options=opts(max_steps=4),
        keep_sparsity=True,
    )
    lm = _pruned()
    zeros = {n: (m.weight == 0).clone() for n, m in lm.model.named_modules() if n.endswith("proj")}
    result = finetune(cfg, tmp_path / "heal", model=lm, progress=False)
    s = result["sparsity"]
    assert s["before"] == s["after"] == pytest.approx(0.5, abs=0.01)
    for name, m in lm.model.named_modules():
        if name in zeros:
            assert torch.equal(m.weight == 0, zeros[name]), name
    loose = FinetuneConfig(model="tiny", data=cfg.data, options=cfg.options)
    lm2 = _pruned()
    finetune(loose, tmp_path / "loose", model=lm2, progress=False)
    after = sum(int((m.weight == 0).sum()) for n, m in lm2.model.named_modules() if n in zeros)
    assert after < sum(int(z.sum()) for z in zeros.values())  # without the option, zeros drift


def test_keep_sparsity_needs_a_sparse_model(tmp_path, text_file):
    cfg = FinetuneConfig(
        model="tiny", data=data_cfg(str(text_file)), options=opts(), keep_sparsity=True
    )
    with pytest.raises(WattlmError, match="no zero weights"):
        finetune(cfg, tmp_path / "run", model=tiny_causal_lm(), progress=False)
