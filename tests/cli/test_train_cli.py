"""``wattlm train``: runs on tiny saved models; bad input is one line, exit 2, nothing written."""

import json

import pytest

from wattlm.cli.main import main
from wattlm.models.load import save_model
from wattlm.testing.tiny import tiny_classifier

ROWS = [
    {"text": f"{'the quick fox' if i % 2 else 'the lazy dog'} {i}", "label": i % 2}
    for i in range(200)
]
FAST = ["--max-steps", "2", "--batch-size", "4", "--seq-len", "16", "--eval-max-samples", "8",
        "--meter", "null", "--no-progress"]  # fmt: skip


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "toy.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS))
    text = tmp_path / "notes.txt"
    text.write_text("\n\n".join(f"Paragraph {i} on energy and joules." * 4 for i in range(60)))
    model = save_model(tiny_classifier(), tmp_path / "tiny")
    return {"data": str(data), "text": str(text), "model": str(model), "tmp": tmp_path}


def test_finetune_distill_qat_chain(setup, capsys):
    s, tmp = setup, setup["tmp"]
    teacher, student, quant = tmp / "teacher", tmp / "student", tmp / "qat"
    args = ["train", "finetune", "--model", s["model"], "--data", s["data"], "--out", str(teacher)]
    assert main([*args, *FAST]) == 0
    out = capsys.readouterr().out
    assert "accuracy before" in out and "wrote" in out
    assert (teacher / "result.json").is_file() and (teacher / "log.jsonl").is_file()
    args = ["train", "distill", "--teacher", str(teacher), "--student-layers", "1",
            "--data", s["data"], "--temperature", "3", "--alpha", "0.7", "--out", str(student)]  # fmt: skip
    assert main([*args, *FAST]) == 0
    cfg = json.loads((student / "config.json").read_text())
    assert (cfg["student"], cfg["temperature"], cfg["alpha"]) == ("layers:1", 3.0, 0.7)
    args = ["train", "qat", "--model", str(student), "--scheme", "int8",
            "--qat-backend", "wattlm", "--data", s["data"], "--out", str(quant)]  # fmt: skip
    assert main([*args, *FAST]) == 0
    assert "without QAT" in capsys.readouterr().out
    stages = json.loads((quant / "model" / "wattlm_compression.json").read_text())["stages"]
    assert stages[0]["method"] == "int8-weight"


def test_config_file_is_the_base_and_flags_override(setup):
    s, tmp = setup, setup["tmp"]
    first = tmp / "a"
    args = ["train", "finetune", "--model", s["model"], "--data", s["data"], "--optimizer", "sgd"]
    assert main([*args, *FAST, "--out", str(first)]) == 0
    again = tmp / "b"
    assert main(["train", "finetune", "--config", str(first / "config.json"), "--max-steps", "1",
                 "--meter", "null", "--no-progress", "--out", str(again)]) == 0  # fmt: skip
    a, b = (json.loads((p / "config.json").read_text()) for p in (first, again))
    assert b["options"]["optimizer"] == "sgd" and b["options"]["max_steps"] == 1
    assert a["options"]["epochs"] is None  # --max-steps alone: not capped at one epoch
    b["options"]["max_steps"] = a["options"]["max_steps"]
    assert a == b


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--optimizer", "lion"], "unknown optimizer 'lion'"),
        (["--precision", "fp16"], "fp16 training needs a CUDA GPU"),
        (["--optimizer", "adamw8bit"], "adamw8bit (bitsandbytes) needs a CUDA GPU"),
        (["--batch-size", "0"], "batch_size must be an integer >= 1"),
        (["--resume"], "nothing to resume"),
        (["--data", "TEXT"], "data without labels for a classifier"),
        (["--model", "no-such-model"], "model not found"),
        (["--config", "missing.json"], "config file not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(setup, extra, message, capsys):
    s = setup
    out = s["tmp"] / "run"
    extra = [s["text"] if x == "TEXT" else x for x in extra]
    args = ["train", "finetune", "--model", s["model"], "--data", s["data"], *FAST, *extra]
    code = main([*args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_student_and_student_layers_are_exclusive(setup, capsys):
    s = setup
    code = main(["train", "distill", "--teacher", s["model"], "--student", "every:2",
                 "--student-layers", "1", "--data", s["data"], "--out", str(s["tmp"] / "x")])  # fmt: skip
    assert code == 2
    assert "not both" in capsys.readouterr().err


def test_help_lists_the_recipes(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("finetune", "distill", "qat"):
        assert cmd in out
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
