from __future__ import annotations

import pytest

from wattlm.cli.main import main


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--clients", "0"], "--clients must be >= 1"),
        (["--fraction", "0"], "--fraction must be in (0, 1]"),
        (["--fraction", "1.01"], "--fraction must be in (0, 1]"),
        (["--alpha", "0"], "--alpha must be > 0"),
        (["--alpha", "-0.5"], "--alpha must be > 0"),
        (["--strategy", "fedsgd"], "unknown strategy 'fedsgd'"),
        (["--compression", "gzip"], "unknown compression 'gzip'"),
        (["--fault", "boom@1:0"], "bad fault 'boom@1:0'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment, tmp_path, capsys):
    rc = main(["federate", "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and fragment in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_lora_on_a_classifier_without_a_compatible_target(tiny_setup, tmp_path, capsys):
    model, data = tiny_setup
    args = ["federate", "--out", str(tmp_path / "run"), "--model", str(model)]
    rc = main([*args, "--data", str(data), "--lora", "--lora-targets", "q_proj,v_proj"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert "LoRA target(s) q_proj, v_proj are not modules of this model" in err
    assert not (tmp_path / "run").exists()


def test_resume_without_a_run_is_an_error(tiny_setup, tmp_path, capsys):
    model, data = tiny_setup
    rc = main(
        ["federate", "--out", str(tmp_path), "--model", str(model), "--data", str(data), "--resume"]
    )
    assert rc == 2 and "nothing to resume" in capsys.readouterr().err
