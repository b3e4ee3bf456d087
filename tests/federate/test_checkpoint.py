"""The per-round checkpoint round-trips every kind of strategy state without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wattlm.errors import WattlmError
from wattlm.federate.checkpoint import CHECKPOINT, RunState, load_state, save_state


def test_strategy_state_round_trips_and_old_rounds_are_removed(tmp_path):
    strategy = {
        "current_arrays": {"__record__": {"a.w": np.arange(3, dtype=np.float32)}},
        "momentum_vector": [np.ones((2, 2), np.float32), np.zeros(1, np.float32)],
        "m_t": {"x": np.full(2, 0.5)},
    }
    save_state(tmp_path, RunState(1, {"w": np.zeros(2, np.float32)}, {"rounds": []}, strategy))
    save_state(tmp_path, RunState(2, {"w": np.ones(2, np.float32)}, {"rounds": [1]}, strategy))
    state = load_state(tmp_path)
    assert state.round == 2 and state.arrays["w"].tolist() == [1.0, 1.0]
    assert state.strategy["current_arrays"]["__record__"]["a.w"].tolist() == [0.0, 1.0, 2.0]
    assert [a.shape for a in state.strategy["momentum_vector"]] == [(2, 2), (1,)]
    assert state.strategy["m_t"]["x"].tolist() == [0.5, 0.5]
    files = sorted(p.name for p in (tmp_path / CHECKPOINT).iterdir())
    assert files == ["arrays-2.npz", "state.json", "strategy-2.npz"]


def test_a_pickled_checkpoint_of_an_older_version_is_refused_not_read(tmp_path):
    folder = tmp_path / CHECKPOINT
    folder.mkdir()
    np.savez(folder / "arrays-1.npz", w=np.zeros(1))
    (folder / "strategy-1.pkl").write_bytes(b"\x80\x04K\x01.")  # would unpickle to 1
    (folder / "state.json").write_text(json.dumps({"round": 1, "record": {}}))
    with pytest.raises(WattlmError, match="never read back"):
        load_state(tmp_path)
