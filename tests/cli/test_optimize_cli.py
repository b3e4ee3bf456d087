"""``wattlm optimize``: end to end on a tiny saved Llama; bad input is one line, exit 2."""

import dataclasses
import importlib.util
import json

import pytest

from wattlm.cli.main import main
from wattlm.report.result import validate_result
from wattlm.search.config import OptimizeConfig, StageSettings
from wattlm.search.loop import tried

SPACE = """
name: tiny
methods:
  none: []
  int8-weight: [{method: int8-weight}]
  int4-weight:
    stages: [{method: int4-weight, group_size: 32}]
backends:
  torch: {}
  llamacpp: {qtype: [q8_0, q4_0]}
batch_sizes: [1, 2]
threads: [1]
start:
  - {method: none, backend: llamacpp, qtype: q8_0, batch_size: 2}
"""


@pytest.fixture
def tiny_model_dir(tmp_path):
    from wattlm.models.load import save_model
    from wattlm.testing.tiny import tiny_causal_lm

    return str(save_model(tiny_causal_lm(seed=2, max_positions=512), tmp_path / "tiny"))


@pytest.mark.slow
def test_optimize_writes_a_valid_record_model_and_reports(
    tiny_model_dir, text_file, tmp_path, capsys
):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    stage = StageSettings(prompt_tokens=16, new_tokens=4, warmup=0, repeats=2, ppl_max_tokens=200)
    cfg = OptimizeConfig(
        model=tiny_model_dir, data=str(text_file), space=str(space), n_trials=5,
        time_budget_s="5m", threads=1, meter="estimate", screen=stage,
        full=dataclasses.replace(stage, repeats=3, ppl_max_tokens=300), ppl_max_length=64,
        ppl_stride=32, remeasure=1,
    )  # fmt: skip
    config = tmp_path / "optimize.json-config"
    config.write_text(json.dumps(cfg.to_dict()))
    out = tmp_path / "run"
    code = main(["optimize", "--config", str(config), "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    record = json.loads((out / "optimize.json").read_text())
    validate_result(record)
    assert record["kind"] == "optimize" and record["energy_source"].startswith("estimate:")
    assert tried(record) == 5
    assert record["peer"] is None  # a folder, not a GGUF file: no llama.cpp default to compare
    chosen = next(t for t in record["trials"] if t["number"] == record["recommended"])
    assert chosen["feasible"] and chosen["stage"] == "full"
    rec = record["recommended_model"]
    assert (out / rec["path"]).exists()
    result = json.loads((out / rec["result_path"]).read_text())
    validate_result(result)
    assert result["runs"][0]["backend"] == chosen["backend"]
    assert result["runs"][0]["batch_size"] == chosen["batch_size"]
    for t in record["trials"]:
        if t["result_path"]:
            assert (out / t["result_path"]).is_file()
    if importlib.util.find_spec("wattlm.report.optimize_report"):
        assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert "Pareto front" in printed.out and "wrote" in printed.out
    assert json.loads((out / "config.json").read_text()) == cfg.to_dict()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "2"], "budget '2' is ambiguous"),
        (["--budget", "two"], "budget 'two' is not a number"),
        (["--time-budget", "soon"], "time budget 'soon' is not a duration"),
        (["--sampler", "cmaes"], "unknown sampler 'cmaes'"),
        (["--objective", "joules"], "unknown objective 'joules'"),
        (["--space", "no-such-space.yaml"], "search space not found"),
        (["--storage", "study.db"], "not a database URL"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["optimize", *args, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_space_file_lists_valid_keys(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("methods: {none: []}\nbatch: [1]\n")
    code = main(["optimize", "--space", str(space), "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown key(s)" in err and "batch" in err and "batch_sizes" in err


def test_help_lists_the_options(capsys):
    assert main(["optimize", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--budget", "--objective", "--sampler", "--time-budget", "--storage", "--ray"):
        assert option in out
