"""``wattlm optimize --serving-tokens``: validated before any work, one line, exit 2."""

import pytest

from wattlm.cli.main import main


@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_bad_serving_tokens_exit_2_with_one_line(value, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["optimize", "--serving-tokens", value, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "serving" in err.lower()
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_help_shows_the_serving_tokens_option_and_its_default(capsys):
    assert main(["optimize", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--serving-tokens" in out and "10000000" in out
