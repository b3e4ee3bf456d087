"""Shared CLI options: one help text per option across commands, one flags → BenchConfig."""

import json
from collections import defaultdict

import pytest
import typer

from wattlm.cli import options as opt
from wattlm.cli.main import app, main
from wattlm.errors import WattlmError

#: the commands that share the measurement, run and training options of wattlm.cli.options
SHARING = ("bench", "compress", "optimize", "measure", "train finetune", "train distill", "train qat")  # fmt: skip


def _commands() -> dict[str, object]:
    found: dict[str, object] = {}

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return found


def _options() -> dict[str, dict[str, str]]:
    """option name -> {command: help} for every option of every command."""
    by_name: dict[str, dict[str, str]] = defaultdict(dict)
    for name, cmd in _commands().items():
        for param in cmd.params:
            if param.param_type_name == "option" and name in SHARING:
                by_name[param.opts[0]][name] = param.help
    return by_name


def test_shared_options_have_one_help_text():
    shared = {name: helps for name, helps in _options().items() if len(helps) > 1}
    for name in ("--model", "--data", "--threads", "--meter", "--device", "--out", "--seed",
                 "--config", "--progress", "--batch", "--repeats", "--dtype"):  # fmt: skip
        assert name in shared, name
    differing = {name: helps for name, helps in shared.items() if len(set(helps.values())) > 1}
    assert differing == {}


def test_every_train_recipe_takes_the_same_shared_options():
    commands = _commands()
    sets = {
        name: {p.opts[0] for p in commands[f"train {name}"].params}
        for name in ("finetune", "distill", "qat")
    }
    common = sets["finetune"] & sets["distill"] & sets["qat"]
    assert {"--lr", "--seq-len", "--max-time", "--grid-intensity", "--resume"} <= common
    for name, own in sets.items():
        assert len(own - common) <= 7, (name, sorted(own - common))


def test_compress_takes_device_and_dtype():
    options = _options()
    assert "compress" in options["--device"] and "compress" in options["--dtype"]


def test_help_shows_defaults_of_none_default_options(capsys):
    assert main(["train", "finetune", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(5e-5)" in out and "(minilm-l6)" in out
    assert main(["bench", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "smollm2-135m" in out and "runs/bench-<time>" in out


def test_bench_config_from_flags():
    cfg = opt.bench_config(
        backend="torch,llamacpp", batch="2", grid_intensity=100.0, dtype="bfloat16"
    )
    assert cfg.backends == ("torch", "llamacpp")
    assert cfg.batch_sizes == (2,)
    assert cfg.grid_intensity_g_per_kwh == 100.0
    assert (cfg.dtype, cfg.repeats) == ("bfloat16", 5)
    with pytest.raises(WattlmError, match="comma-separated integers"):
        opt.bench_config(batch="1,x")
    with pytest.raises(WattlmError, match="unknown key"):
        opt.bench_config(no_such_flag=1)


def test_config_file_is_the_base_and_given_flags_override(tmp_path):
    base = opt.bench_config(repeats=3, batch="4", meter="null")
    file = tmp_path / "config.json"
    file.write_text(json.dumps(base.to_dict()))
    captured = {}

    def probe(ctx: typer.Context, repeats: opt.Repeats = 5, batch: opt.Batch = "1,8",
              config: opt.Config = None) -> None:  # fmt: skip
        captured["cfg"] = opt.bench_config(ctx, config=config, repeats=repeats, batch=batch)

    probe_app = typer.Typer()
    probe_app.command()(probe)
    probe_app(["--config", str(file), "--repeats", "7"], standalone_mode=False)
    cfg = captured["cfg"]
    assert (cfg.repeats, cfg.batch_sizes, cfg.meter) == (7, (4,), "null")  # batch from the file


def test_missing_or_bad_config_file(tmp_path):
    with pytest.raises(WattlmError, match="config file not found"):
        opt.bench_config(config=tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(WattlmError, match="must hold a JSON object"):
        opt.bench_config(config=bad)


def test_optimize_flags_override_one_stage_field_of_the_file(tmp_path):
    from wattlm.cli.optimize import _optimize_config, _optimize_fields
    from wattlm.search.config import OptimizeConfig, StageSettings

    base = OptimizeConfig(n_trials=9, screen=StageSettings(prompt_tokens=64, repeats=4))
    file = tmp_path / "config.json"
    file.write_text(json.dumps(base.to_dict()))
    flags = {"screen_repeats": 3, "time_budget": "90s"}
    cfg = opt.from_flags(None, file, flags, _optimize_fields, _optimize_config)
    assert (cfg.screen.repeats, cfg.screen.prompt_tokens) == (3, 64)
    assert (cfg.n_trials, cfg.time_budget_s, cfg.full) == (9, 90.0, base.full)
