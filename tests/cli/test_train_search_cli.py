"""``wattlm train search``: a real tiny run end to end; bad input is one line and exit 2."""

import importlib.util
import json

import pytest

from wattlm.cli.main import main
from wattlm.report.result import validate_result

POSITIVE = ("the quick brown fox jumps", "energy is measured in joules", "a quick model")
NEGATIVE = ("the lazy dog", "perplexity of the lazy model", "power in watts is lazy")

#: LoRA is searched when peft is installed (the lora extra)
LAYERS = "[all, freeze-embeddings, lora]" if importlib.util.find_spec("peft") else "[all]"
SPACE = f"""
name: tiny
dimensions:
  optimizer: [adamw, sgd]
  lr: [1.0e-3, 3.0e-3]
  train_layers: {LAYERS}
  length_batching: [longest, bucketed]
"""


@pytest.fixture
def toy(tmp_path):
    """A tiny classifier saved to disk and a labelled file it can learn."""
    from wattlm.models.load import save_model
    from wattlm.testing.tiny import tiny_classifier

    rows = []
    for i in range(240):
        label = i % 2
        words = (POSITIVE if label else NEGATIVE)[i % 3]
        rows.append({"text": f"{words} {i % 7}", "label": label})
    data = tmp_path / "toy.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    model = save_model(tiny_classifier(), tmp_path / "clf")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return {"model": str(model), "data": str(data), "space": str(space)}


def _args(toy, out, *extra):
    return ["train", "search", "--model", toy["model"], "--data", toy["data"],
            "--space", toy["space"], "--out", str(out), "--seq-len", "16", "--threads", "1",
            "--max-samples", "192", "--eval-every", "32", "--eval-max-samples", "32",
            "--meter", "estimate", "--no-progress", *extra]  # fmt: skip


def test_a_real_tiny_search_writes_a_valid_record_and_a_ready_command(toy, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(_args(toy, out, "--target", "0.9", "--n-trials", "2", "--sampler", "random"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    record = json.loads((out / "train-search.json").read_text())
    validate_result(record)
    assert record["target"] == {"metric": "accuracy", "value": 0.9, "higher_is_better": True,
                                "eval_split": "test", "eval_max_samples": 32}  # fmt: skip
    assert len(record["trials"]) == 3 and record["trials"][0]["label"].startswith("default")
    assert record["energy_source"].startswith("estimate")
    for t in record["trials"]:
        if t["state"] != "failed":
            assert t["energy_j"] > 0 and t["curve"], t
            energies = [p["energy_j"] for p in t["curve"]]
            assert energies == sorted(energies)
    if record["recommended"] is not None:
        assert "train it: wattlm train finetune" in captured.out
        assert record["recommended_command"].count("--max-steps") == 1
    assert (out / "report.html").is_file() and (out / "report.md").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target", "1.5"], "target accuracy 1.5 can never be reached"),
        (["--target", "0.9", "--sampler", "cmaes"], "unknown sampler 'cmaes'"),
        (["--target", "0.9", "--recipe", "qat"], "unknown recipe 'qat'"),
        (["--target", "0.9", "--recipe", "distill", "--alpha", "2"], "alpha must be in [0, 1]"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(toy, tmp_path, capsys, extra, message):
    code = main(_args(toy, tmp_path / "run", *extra))
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "space, message",
    [
        ("dimensions: {optimizer: [adamw, lion]}", "unknown optimizer 'lion'"),
        ("dimensions: {}", "is empty"),
    ],
)
def test_bad_spaces_are_one_line_and_exit_2(toy, tmp_path, capsys, space, message):
    toy = {**toy, "space": str(tmp_path / "bad.yaml")}
    (tmp_path / "bad.yaml").write_text(space)
    code = main(_args(toy, tmp_path / "run", "--target", "0.9"))
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_lora_on_a_model_without_matching_modules_is_refused_before_training(
    toy, tmp_path, capsys, monkeypatch
):
    pytest.importorskip("peft")
    import wattlm.training.layers as layers

    monkeypatch.setattr(layers, "LORA_TARGETS", ("not_a_module",))
    code = main(_args(toy, tmp_path / "run", "--target", "0.9"))
    err = capsys.readouterr().err
    assert code == 2 and "has no module LoRA can adapt" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "study.db").exists()  # nothing trained, no study opened


def test_wattlm_report_renders_a_train_search_folder(tmp_path, capsys):
    from wattlm.report.train_search_report import sample_train_search_record

    (tmp_path / "train-search.json").write_text(json.dumps(sample_train_search_record()))
    assert main(["report", str(tmp_path), "--no-print"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# wattlm train search: minilm-l6 on movie-sentiment")
    assert "5.00× less energy" in md and "| 1 ★ |" in md
    assert "<svg" in (tmp_path / "report.html").read_text()


def test_a_real_tiny_distill_search_trains_students(toy, tmp_path, capsys):
    out = tmp_path / "run"
    args = _args(toy, out, "--target", "0.9", "--n-trials", "1", "--sampler", "random",
                 "--recipe", "distill", "--student", "layers:1")  # fmt: skip
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    record = json.loads((out / "train-search.json").read_text())
    validate_result(record)
    assert record["config"]["recipe"] == "distill"
    trials = [t for t in record["trials"] if t["state"] != "failed"]
    assert len(trials) == 2, [t["error"] for t in record["trials"]]
    assert all(t["energy_j"] > 0 and t["curve"] for t in trials)
    if record["recommended_command"]:
        assert record["recommended_command"].startswith("wattlm train distill --teacher ")
        assert "--student layers:1" in record["recommended_command"]
