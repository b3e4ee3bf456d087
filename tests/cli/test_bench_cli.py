"""``wattlm bench`` bad input: one clear line on stderr, exit code 2, nothing written."""

import re

import pytest

from wattlm.cli.main import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "batch size must be an integer >= 1, got 0"),
        (["--batch", "-4"], "batch size must be an integer >= 1, got -4"),
        (["--batch", "1,x"], "--batch must be comma-separated integers"),
        (["--backend", "onnx"], "unknown backend 'onnx'"),
        (["--model", "missing/model.gguf"], "model file not found"),
        (["--model", "no-such-asset"], "model not found: 'no-such-asset'"),
        (["--meter", "kill-a-watt"], "unknown meter"),
        (["--onnx-weights", "int4-g32"], "unknown ONNX weight format 'int4-g32'"),
        (["--onnx-weights", "int3"], "ONNX weight format 'int3': no 3 bits"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["bench", *args, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_corrupt_gguf_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 20)
    code = main(["bench", "--model", str(bad), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "broken.gguf" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path, capsys):
    assert main(["bench", "--config", str(tmp_path / "nope.json")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_debug_shows_traceback(tmp_path):
    from wattlm.errors import WattlmError

    with pytest.raises(WattlmError):
        main(["--debug", "bench", "--batch", "0", "--out", str(tmp_path / "r")])


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("assets", "bench", "measure", "report"):
        assert cmd in out
    assert main(["--version"]) == 0
    assert "wattlm 0.1.0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # click words it "No such option: --x" or "No such option '--x'." by release
        (["bench", "--no-such-option"], r"No such option:? '?--no-such-option"),
        (["assets", "fetch"], "Missing argument"),
        (["bench", "--repeats", "many"], "Invalid value for '--repeats'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "`wattlm " in err or "requires" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
