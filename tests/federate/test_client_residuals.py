"""The ClientApp's ``train`` keeps its top-k residual on disk and, in a new context (a
resumed run), starts from the checkpointed round's residual: called directly with a fake
Flower context, no simulation."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch

pytest.importorskip("flwr")

from wattlm.federate.client import train
from wattlm.federate.codec import from_record, to_record
from wattlm.federate.local import get_arrays, load_global_model
from wattlm.federate.residuals import load_residual, residual_path, save_residual, stored_rounds

#: the runs here: two clients, three rounds, top-k updates (over conftest's fed_config)
TOPK = dict(clients=2, rounds=3, compression="topk", topk_fraction=0.05)


def _context(**node):
    from flwr.app import Context, RecordDict

    return Context(
        run_id=0,
        node_id=1,
        node_config={"partition-id": 0, **node},
        state=RecordDict(),
        run_config={},
    )


def _train(cfg, rnd, context, arrays, **config):
    from flwr.app import DEFAULT_TTL, ConfigRecord, Message, Metadata, RecordDict

    job = json.dumps(cfg.to_dict(), sort_keys=True)
    meta = Metadata(
        run_id=0,
        message_id="",
        src_node_id=0,
        dst_node_id=1,
        reply_to_message_id="",
        group_id=str(rnd),
        created_at=time.time(),
        ttl=DEFAULT_TTL,
        message_type="train",
    )
    content = RecordDict(
        {
            "arrays": to_record(arrays),
            "config": ConfigRecord({"job": job, "server-round": rnd, "run-key": "k1", **config}),
        }
    )
    torch.manual_seed(rnd)  # dropout draws from torch's global generator
    reply = train(Message(content, metadata=meta), context)
    return from_record(reply.content["arrays"]), dict(reply.content["report"])


def _same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_resumed_client_sends_exactly_what_it_would_have_sent(tiny_setup, tmp_path, fed_config):
    cfg = fed_config(tiny_setup, **TOPK)
    base = get_arrays(load_global_model(cfg).model)
    shared, resumed = tmp_path / "shared", tmp_path / "resumed"
    ctx = _context()
    _, rep1 = _train(cfg, 1, ctx, base, **{"residual-dir": str(shared)})
    assert rep1["residual-round"] == 0 and rep1["residual-stored"] is True
    in_memory = from_record(ctx.state["residual"])
    assert _same(load_residual(shared, 0, before=2)[1], in_memory)
    assert any(np.abs(v).max() > 0 for v in in_memory.values())  # something was left out
    shutil.copytree(shared, resumed)

    # round 2 in the same run: the residual comes from the context
    sent_run, rep_run = _train(cfg, 2, ctx, base, **{"residual-dir": str(shared)})
    assert rep_run["residual-round"] == 1
    assert stored_rounds(shared) == {0: [1, 2]}  # round 1 stays until round 2 is checkpointed

    # round 2 after a resume (new context): the residual of round 1 from disk, and a round-2
    # residual left by the cut-off attempt is dropped, never read
    save_residual(resumed, 0, 2, {k: np.full_like(v, 999.0) for k, v in in_memory.items()})
    fresh = _context()
    sent_resumed, rep_resumed = _train(cfg, 2, fresh, base, **{"residual-dir": str(resumed)})
    assert rep_resumed["residual-round"] == 1
    assert _same(sent_resumed, sent_run)
    assert _same(load_residual(resumed, 0, before=3)[1], from_record(fresh.state["residual"]))
    assert _same(load_residual(resumed, 0, before=3)[1], load_residual(shared, 0, before=3)[1])

    # without a residual folder a new context starts from zero: a different update
    bare = _context()
    sent_bare, rep_bare = _train(cfg, 2, bare, base)
    assert rep_bare["residual-round"] == 0 and rep_bare["residual-stored"] is False
    assert not _same(sent_bare, sent_run)


def test_a_supernodes_own_folder_wins_and_holds_one_subfolder_per_run(
    tiny_setup, tmp_path, fed_config
):
    cfg = fed_config(tiny_setup, **TOPK)
    base = get_arrays(load_global_model(cfg).model)
    own, shared = tmp_path / "node", tmp_path / "shared"
    ctx = _context(**{"residual-dir": str(own)})
    for rnd in (1, 2, 3):
        _train(cfg, rnd, ctx, base, **{"residual-dir": str(shared)})
    assert not shared.exists()
    assert stored_rounds(own / "run-k1") == {0: [2, 3]}  # the client prunes its own folder
    assert residual_path(own / "run-k1", 0, 3).is_file()


def test_other_compressions_keep_no_residual(tiny_setup, tmp_path, fed_config):
    cfg = fed_config(tiny_setup, **{**TOPK, "compression": "int8"})
    base = get_arrays(load_global_model(cfg).model)
    ctx = _context()
    _, rep = _train(cfg, 1, ctx, base, **{"residual-dir": str(tmp_path)})
    assert "residual-round" not in rep and "residual" not in ctx.state
    assert stored_rounds(tmp_path) == {}
