"""``wattlm serve`` arguments and run folders (no model is loaded here)."""

from __future__ import annotations

import json
import socket

import pytest

from wattlm.cli.main import main
from wattlm.serve import runner
from wattlm.serve.config import ServeConfig
from wattlm.serve.recommendation import read_recommendation


def test_bad_options_are_one_line_errors(capsys):
    assert main(["serve", "m.gguf", "--slots", "0"]) == 2
    assert "slots must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["serve", "m.gguf", "--api-key", " "]) == 2
    assert "--api-key is empty" in capsys.readouterr().err


def test_a_taken_port_fails_before_the_model_loads(monkeypatch, capsys):
    monkeypatch.setattr(runner, "make_engine", lambda cfg: pytest.fail("must not load"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "m.gguf", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port 0" in err


def test_a_run_folder_serves_its_recommendation(tmp_path, monkeypatch):
    (tmp_path / "recommended").mkdir()
    (tmp_path / "recommended" / "model.gguf").write_bytes(b"GGUF")
    rec = {"path": "recommended/model.gguf", "backend": "llamacpp", "batch_size": 8,
           "threads": 2, "qtype": "q4_1"}  # fmt: skip
    (tmp_path / "optimize.json").write_text(json.dumps({"recommended_model": rec}))
    seen: dict = {}
    monkeypatch.setattr(runner, "serve", lambda cfg, on_ready=None: seen.update(cfg=cfg))
    assert main(["serve", str(tmp_path), "--port", "0"]) == 0
    cfg: ServeConfig = seen["cfg"]
    assert (cfg.backend, cfg.slots, cfg.threads) == ("llamacpp", 8, 2)
    assert cfg.model == str(tmp_path / "recommended" / "model.gguf")
    assert cfg.host == "127.0.0.1" and cfg.model_id == "model.gguf"
    assert main(["serve", str(tmp_path), "--slots", "3"]) == 0  # an option wins
    assert seen["cfg"].slots == 3 and seen["cfg"].threads == 2


def test_a_run_without_a_saved_model_is_refused(tmp_path, capsys):
    (tmp_path / "optimize.json").write_text(json.dumps({"recommended_model": None}))
    assert main(["serve", str(tmp_path)]) == 2
    assert "recommends no saved model" in capsys.readouterr().err
    with pytest.raises(Exception, match="cannot read"):
        read_recommendation(tmp_path / "missing")


def test_config_never_writes_the_key():
    cfg = ServeConfig(model="m.gguf", api_key="secret")
    assert cfg.to_dict()["api_key"] == "set"
    assert "secret" not in json.dumps(cfg.to_dict())
