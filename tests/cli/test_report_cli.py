"""``wattlm report PATH``: writes report.md beside result.json; user errors exit 2."""

from __future__ import annotations

import json

from wattlm.cli.main import main
from wattlm.report.markdown import render_markdown
from wattlm.testing.results import sample_bench_result, sample_measure_result


def _run_folder(tmp_path, result=None):
    run = tmp_path / "run"
    run.mkdir()
    result = sample_bench_result() if result is None else result
    (run / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return run


def test_writes_report_md_next_to_result(tmp_path, capsys):
    run = _run_folder(tmp_path)
    assert main(["report", str(run)]) == 0
    report = (run / "report.md").read_text(encoding="utf-8")
    assert report == render_markdown(sample_bench_result())
    out, err = capsys.readouterr()
    assert "wattlm bench: smollm2-135m" in out
    assert err == f"wrote {run / 'report.md'}\n"
    assert sorted(p.name for p in run.iterdir()) == ["report.md", "result.json"]  # no temp left


def test_accepts_the_file_and_no_print(tmp_path, capsys):
    run = _run_folder(tmp_path, sample_measure_result())
    assert main(["report", str(run / "result.json"), "--no-print"]) == 0
    assert (run / "report.md").read_text(encoding="utf-8").startswith("# wattlm measure: ")
    out, _ = capsys.readouterr()
    assert out == ""


def test_out_file_and_out_folder(tmp_path):
    run = _run_folder(tmp_path)
    target = tmp_path / "reports" / "smollm2.md"
    assert main(["report", str(run), "--out", str(target), "--no-print"]) == 0
    assert target.read_text(encoding="utf-8").startswith("# wattlm bench: smollm2-135m\n")
    assert not (run / "report.md").exists()
    assert main(["report", str(run), "-o", str(tmp_path / "reports"), "--no-print"]) == 0
    assert (tmp_path / "reports" / "report.md").is_file()


def test_missing_path_exits_2_with_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: {tmp_path / 'nope'} does not exist\n"


def test_folder_without_result_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: no result.json in {tmp_path} (pass a run folder)\n"


def test_invalid_result_exits_2_and_writes_nothing(tmp_path, capsys):
    result = sample_bench_result()
    result["runs"][0]["batch_size"] = "8"
    run = _run_folder(tmp_path, result)
    assert main(["report", str(run)]) == 2
    assert capsys.readouterr().err == (
        f"error: {run / 'result.json'} is invalid at $.runs[0].batch_size: "
        "expected integer, got string\n"
    )
    assert not (run / "report.md").exists()


def test_newer_schema_exits_2(tmp_path, capsys):
    run = _run_folder(tmp_path, sample_bench_result(schema_version=3))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "(upgrade wattlm: pip install -U wattlm)" in err
