import pytest

from wattlm.cli import options as opt
from wattlm.measure import precision_support
from wattlm.measure.cpu_power import CpuIdentity

ZEN3 = CpuIdentity("AMD EPYC 7B13", "AuthenticAMD", 25, 1, flags=("sse2", "avx2"))
ZEN4 = CpuIdentity("AMD EPYC 9B14", "AuthenticAMD", 25, 17, flags=("avx2", "avx512_bf16"))


@pytest.mark.parametrize(("cpu", "warned"), [(ZEN3, True), (ZEN4, False)])
def test_bench_flags_warn_once_when_bf16_is_emulated(monkeypatch, capsys, cpu, warned):
    monkeypatch.setattr(precision_support, "read_cpu_identity", lambda: cpu)
    cfg = opt.bench_config(dtype="bfloat16", device="cpu")
    assert cfg.dtype == "bfloat16"
    err = capsys.readouterr().err
    assert (err.count("bfloat16 is emulated") == 1) is warned
    opt.bench_config(dtype="float32", device="cpu")
    assert "emulated" not in capsys.readouterr().err


def test_train_warns_before_any_work(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from wattlm.cli.main import app

    monkeypatch.setattr(precision_support, "read_cpu_identity", lambda: ZEN3)
    # an unknown data set fails after the warning and before any training
    result = CliRunner().invoke(
        app,
        ["train", "finetune", "--model", "minilm-l6", "--data", str(tmp_path / "none.jsonl"),
         "--precision", "bf16", "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert "bfloat16 is emulated" in result.output
    assert not (tmp_path / "out").exists()
