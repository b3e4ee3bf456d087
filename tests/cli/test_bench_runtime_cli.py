"""``wattlm bench --runtime``: backend runtime settings from the command line."""

import pytest

from wattlm.cli.main import main
from wattlm.cli.options import bench_config


def test_runtime_flag_reaches_the_bench_config():
    cfg = bench_config(backend="llamacpp", runtime="flash_attn=on,n_ubatch=128,n_batch=2048")
    assert cfg.runtime == {"flash_attn": "on", "n_ubatch": 128}  # n_batch at its default


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "torch", "--runtime", "flash_attn=on"], "torch take none"),
        (["--backend", "llamacpp", "--runtime", "kv_cache=q9"], "kv_cache='q9' is not a valid"),
        (["--backend", "llamacpp", "--runtime", "flash_attn"], "is not name=value"),
        (
            ["--backend", "llamacpp", "--runtime", "kv_cache=q4_0,flash_attn=off"],
            "needs flash attention",
        ),
    ],
)
def test_bad_runtime_settings_exit_2_with_one_line(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["bench", *args, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
