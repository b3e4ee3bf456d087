"""Batch order: deterministic, resumable, and the same samples for 1 or N processes."""

import pytest
import torch

from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_tokenizer
from wattlm.training.data import LabelledData, TextChunks, data_kind, step_plan, steps_per_epoch


def test_two_processes_see_exactly_what_one_process_sees():
    one = step_plan(50, batch_size=8, grad_accum=2, epoch=3, seed=7)
    ranks = [
        step_plan(50, batch_size=4, grad_accum=2, epoch=3, seed=7, rank=r, world_size=2)
        for r in range(2)
    ]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == steps_per_epoch(50, 4, 2, 2)
    for s, step in enumerate(one):
        for m, micro in enumerate(step):
            both = ranks[0][s][m] + ranks[1][s][m]
            assert sorted(both) == sorted(micro)


def test_plan_is_deterministic_and_changes_by_epoch():
    a = step_plan(40, batch_size=4, grad_accum=1, epoch=0, seed=1)
    assert a == step_plan(40, batch_size=4, grad_accum=1, epoch=0, seed=1)
    assert a != step_plan(40, batch_size=4, grad_accum=1, epoch=1, seed=1)
    assert steps_per_epoch(40, 4, 3) == 3  # 10 micro-batches -> 3 full groups of 3


def test_text_chunks_and_labelled_batches():
    chunks = TextChunks(list(range(25)), seq_len=8)
    assert len(chunks) == 3
    batch = chunks.collate([2, 0])
    assert batch.inputs["input_ids"][0].tolist() == list(range(16, 24))
    assert torch.equal(batch.inputs["labels"], batch.inputs["input_ids"])
    assert (batch.samples, batch.tokens) == (2, 16)
    with pytest.raises(WattlmError, match="fewer than one chunk"):
        TextChunks([1, 2], seq_len=8)
    data = LabelledData(
        [("the quick fox", 1), ("a lazy dog that sleeps all day", 0)], tiny_tokenizer(), 64
    )
    b = data.collate([0, 1])
    assert b.inputs["labels"].tolist() == [1, 0]
    assert b.tokens == int(b.inputs["attention_mask"].sum()) < b.inputs["input_ids"].numel()
    assert data.num_labels == 2


def test_data_kind(tmp_path):
    assert data_kind("movie-sentiment") == "labelled"
    assert data_kind("wiki-sample") == "text"
    (tmp_path / "a.txt").write_text("x")
    assert data_kind(str(tmp_path / "a.txt")) == "text"
    assert data_kind(str(tmp_path / "b.jsonl")) == "labelled"
    with pytest.raises(WattlmError, match="no such data set"):
        data_kind(str(tmp_path / "missing"))
