"""``wattlm measure -- CMD ARGS...``: the energy of any command.

The command runs as a child process. Its own CPU time (and that of the processes it waited
for) comes from the kernel's resource usage of the reaped child (``os.wait4``), so the
window is closed only after the child has exited. A summary table goes to stderr (the
command's output stays clean on stdout); ``--out DIR`` also writes ``result.json`` and
``config.json`` (format: ``docs/result-format.md``, ``kind: "measure"``). The exit code
is the command's own.

Example::

    wattlm measure --out runs/sum -- python -c "sum(range(10**8))"
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from typing import Annotated, Any

import typer

from wattlm._files import write_json
from wattlm._version import __version__
from wattlm.cli import options as opt
from wattlm.errors import WattlmError

SCHEMA_VERSION = 2  # the measurement carries both energy views


class _ChildUsage:
    """CPU seconds and peak RSS of a reaped child; zero until the child is reaped."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.maxrss_bytes = 0

    def record(self, usage: Any) -> None:
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.maxrss_bytes = int(usage.ru_maxrss) * 1024  # KiB on Linux


def run_child(command: list[str], usage: _ChildUsage) -> int:
    """Run ``command``, wait for it, record its rusage in ``usage``; return its exit code."""
    try:
        proc = subprocess.Popen(command)
    except FileNotFoundError:
        raise WattlmError(
            f"command not found: {command[0]}", hint="check the name and PATH"
        ) from None
    except PermissionError:
        raise WattlmError(f"command is not executable: {command[0]}") from None
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
    except BaseException:  # Ctrl-C reaches the child too: let it finish, then re-raise
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    usage.record(rusage)
    return proc.returncode


def measure(
    ctx: typer.Context,
    meter: opt.Meter = "auto",
    out: opt.Out = None,
    grid_intensity: opt.GridIntensity = None,
    device: opt.Device = "cpu",
    idle_seconds: Annotated[float, typer.Option(help="Idle sampling before the run.")] = 1.0,
) -> None:
    """Run CMD (after --) and report its time, CPU time, energy and carbon."""
    from wattlm.measure.carbon import grams_co2e
    from wattlm.measure.carbon import grid_intensity as resolve_grid
    from wattlm.measure.context import collect_context
    from wattlm.measure.factory import make_meter

    command = list(ctx.args)
    if not command:
        raise WattlmError("no command to measure", hint='wattlm measure -- python -c "print(1)"')
    grid = resolve_grid(grid_intensity)  # fail on a bad value before running anything
    usage = _ChildUsage()
    energy_meter = make_meter(
        meter,
        device=device,
        cpu_clock=lambda: usage.cpu_s,
        idle_seconds=idle_seconds,
        rss_bytes=lambda: usage.maxrss_bytes,
        rss_label="peak resident set size of the child process",
    )
    try:
        energy_meter.begin_window("command")
        exit_code = run_child(command, usage)
        measurement = energy_meter.end_window("command")
    finally:
        energy_meter.close()
    energy_j = measurement.energy_j
    grams = None if energy_j is None else grams_co2e(energy_j, grid)
    _print_table(measurement, grams, exit_code)
    if out is not None:
        config = {
            "schema_version": SCHEMA_VERSION,
            "kind": "measure",
            "command": command,
            "meter": meter,
            "device": device,
            "grid_intensity_g_per_kwh": grid_intensity,
            "idle_seconds": idle_seconds,
            "wattlm_version": __version__,
        }
        result = {
            "schema_version": SCHEMA_VERSION,
            "kind": "measure",
            "wattlm_version": __version__,
            "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": command,
            "exit_code": exit_code,
            "measurement": measurement.to_dict(),
            "energy": {
                "source": energy_meter.source,
                "meter": energy_meter.describe(),
                "idle_subtracted": measurement.idle_power_w is not None,
                "views": dict(energy_meter.methods),
            },
            "carbon": grid.to_dict(),
            "context": collect_context(),
        }
        write_json(out / "config.json", config)
        write_json(out / "result.json", result)
    if exit_code != 0:
        raise typer.Exit(code=exit_code)


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_table(measurement: Any, grams: float | None, exit_code: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="wattlm measure", show_header=True)
    for col in ("wall s", "CPU s", "total J", "marginal J", "source", "gCO2e", "exit"):
        table.add_column(col, justify="left" if col == "source" else "right")
    table.add_row(
        _fmt(measurement.time_s, 3),
        _fmt(measurement.cpu_time_s, 3),
        _fmt(measurement.energy_j, 2),
        _fmt(measurement.energy_marginal_j, 2),
        measurement.source,
        _fmt(grams, 4),
        str(exit_code),
    )
    console = Console(stderr=True)
    console.print(table)
    if measurement.is_estimate:
        band = measurement.energy_band_j
        span = "" if band is None else f" (model band: {band[0]:.2f} to {band[1]:.2f} J total)"
        console.print(f"energy is an estimate, not a measurement{span}")


def register(app: typer.Typer) -> None:
    """Attach the ``measure`` command to ``app``."""
    app.command(
        "measure",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        options_metavar="[OPTIONS] -- CMD [ARGS]...",
    )(measure)
