"""The top-k residual store: exact round trips, atomic writes, pruning, and resume at the
checkpointed round."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wattlm.errors import WattlmError
from wattlm.federate.checkpoint import RunState, load_state, residual_folder, save_state
from wattlm.federate.residuals import (
    drop_unfinished,
    load_residual,
    prune_residuals,
    residual_path,
    save_residual,
    stored_rounds,
)


def _residual(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "bert.encoder.layer.0.attention.self.query.weight": rng.standard_normal((4, 3)).astype(
            np.float32
        ),
        "classifier.bias": np.array([1e-30, -0.0, np.float32(3.4e38)], np.float32),
    }


def test_a_residual_round_trips_bit_for_bit(tmp_path):
    want = _residual(0)
    save_residual(tmp_path, 3, 5, want)
    rnd, got = load_residual(tmp_path, 3, before=6)
    assert rnd == 5 and list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
        assert got[k].tobytes() == want[k].tobytes()  # exact, signed zero included
    assert load_residual(tmp_path, 3, before=5) is None  # only rounds before `before`
    assert load_residual(tmp_path, 2, before=6) is None  # another client has none


def test_a_write_cut_short_is_never_read(tmp_path, monkeypatch):
    save_residual(tmp_path, 0, 1, _residual(1))

    def half_then_die(self, data):
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_die)
    with pytest.raises(OSError, match="disk full"):
        save_residual(tmp_path, 0, 2, _residual(2))
    monkeypatch.undo()
    assert not residual_path(tmp_path, 0, 2).exists()
    # what a killed process leaves behind (no cleanup ran) is not a residual either
    (tmp_path / ".tmp-client-0-round-2.npz-abc123").write_bytes(b"PK\x03\x04 truncated")
    assert stored_rounds(tmp_path) == {0: [1]}
    rnd, got = load_residual(tmp_path, 0, before=3)
    assert rnd == 1 and got["classifier.bias"].tolist() == _residual(1)["classifier.bias"].tolist()


def test_a_damaged_residual_file_is_a_clear_error(tmp_path):
    residual_path(tmp_path, 0, 1).write_bytes(b"not a zip")
    with pytest.raises(WattlmError, match="cannot read the top-k residual") as err:
        load_residual(tmp_path, 0, before=2)
    assert "delete that file" in err.value.hint


def test_prune_keeps_each_clients_newest_checkpointed_residual(tmp_path):
    for rnd in (1, 2, 3, 4):
        save_residual(tmp_path, 0, rnd, _residual(rnd))
    save_residual(tmp_path, 1, 1, _residual(9))  # client 1 sat out rounds 2-4
    gone = prune_residuals(tmp_path, kept_round=3)
    assert sorted(p.name for p in gone) == ["client-0-round-1.npz", "client-0-round-2.npz"]
    assert stored_rounds(tmp_path) == {0: [3, 4], 1: [1]}  # round 4 is not checkpointed yet
    prune_residuals(tmp_path, kept_round=4, partition=1)  # one client's own prune
    assert stored_rounds(tmp_path) == {0: [3, 4], 1: [1]}
    prune_residuals(tmp_path, kept_round=4)
    assert stored_rounds(tmp_path) == {0: [4], 1: [1]}


def test_each_checkpoint_prunes_the_residuals_beside_it_and_keeps_the_run_key(tmp_path):
    folder = residual_folder(tmp_path)
    for rnd in (1, 2):
        save_residual(folder, 0, rnd, _residual(rnd))
    first = RunState(1, {"w": np.zeros(1, np.float32)}, {"rounds": []})
    save_state(tmp_path, first)
    assert stored_rounds(folder) == {0: [1, 2]}
    save_state(tmp_path, RunState(2, first.arrays, {"rounds": []}, run_key=first.run_key))
    assert stored_rounds(folder) == {0: [2]}
    assert load_state(tmp_path).run_key == first.run_key and len(first.run_key) == 32
    assert RunState(0, {}, {}).run_key != first.run_key  # a new run gets a new key


def test_a_resume_reads_the_checkpointed_rounds_residual_not_an_unfinished_one(tmp_path):
    folder = residual_folder(tmp_path)
    save_residual(folder, 0, 2, _residual(2))
    save_residual(folder, 1, 1, _residual(11))
    save_state(tmp_path, RunState(2, {"w": np.zeros(1, np.float32)}, {"rounds": []}))
    save_residual(folder, 0, 3, _residual(3))  # round 3 was cut off before its checkpoint
    save_residual(folder, 1, 3, _residual(13))
    state = load_state(tmp_path)
    assert state.round == 2
    # the server sends round 3 again; each client reads its newest residual before it
    rnd, got = load_residual(folder, 0, before=state.round + 1)
    assert rnd == 2 and np.array_equal(got["classifier.bias"], _residual(2)["classifier.bias"])
    rnd, got = load_residual(folder, 1, before=state.round + 1)
    assert rnd == 1 and np.array_equal(got["classifier.bias"], _residual(11)["classifier.bias"])
    gone = drop_unfinished(folder, after=state.round)
    assert sorted(p.name for p in gone) == ["client-0-round-3.npz", "client-1-round-3.npz"]
    assert stored_rounds(folder) == {0: [2], 1: [1]}
