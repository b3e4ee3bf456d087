"""``wattlm calibrate``: fit the CPU energy estimate to this machine's sensor.

Runs a short fixed workload (torch matmuls at several thread counts and loads) under the
RAPL counters, fits ``estimate:cpu-v2``'s static and dynamic power per core by least
squares and saves them, with the CPU they were fitted on, as a profile in the user cache
dir (``$WATTLM_CACHE`` if set). Later runs on this CPU use it (source
``estimate:cpu-v2+calibrated``). It reports the estimate's error against the sensor per
workload, for the fitted and the bundled powers. Without a CPU sensor it says so and exits
with status 2. ``--install FILE`` checks a profile made elsewhere (same CPU only) and
installs it; ``--show`` prints the installed one.

Example (shell)::

    sudo wattlm calibrate --seconds 3        # RAPL is readable by root only
    wattlm calibrate --show
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from wattlm.errors import WattlmError

SENSORS = ("auto", "rapl", "nvml")


def _sensor(kind: str, cores: int):
    """The CPU sensor to fit against: RAPL counters of the whole packages, raw."""
    from wattlm.measure.nvml import NvmlMeter
    from wattlm.measure.rapl import RaplMeter

    if kind not in SENSORS:
        raise WattlmError(f"unknown sensor {kind!r}", hint=f"choose one of {', '.join(SENSORS)}")
    if kind in ("auto", "rapl") and RaplMeter.available():
        return RaplMeter(alloc_cores=cores, machine_cores=cores)  # no idle sample: raw joules
    if kind in ("auto", "nvml") and NvmlMeter.available():
        raise WattlmError(
            "only NVML found: it measures the GPU, not the CPU power the estimate models; "
            "calibration needs readable RAPL counters",
            hint="run as root on a machine with RAPL (Linux >= 5.10 restricts them to root)",
        )
    raise WattlmError(
        "no CPU energy sensor on this machine (no readable RAPL counters), nothing to "
        "calibrate against",
        hint="run as root on a machine with RAPL; the estimate keeps its bundled powers",
    )


def calibrate_command(
    meter: Annotated[str, typer.Option(help="Sensor to fit against: auto, rapl or nvml.")] = "auto",
    seconds: Annotated[float, typer.Option(help="Seconds per workload window.")] = 2.0,
    repeats: Annotated[int, typer.Option(help="Times the whole plan runs.")] = 2,
    out: Annotated[
        Optional[Path],  # noqa: UP045 - typer reads the annotation at runtime
        typer.Option(help="Profile file to write (default: the user cache's profile)."),
    ] = None,
    install: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Check a profile made elsewhere on this CPU and install it."),
    ] = None,
    show: Annotated[bool, typer.Option(help="Print the installed profile and exit.")] = False,
) -> None:
    """Fit the CPU energy estimate's per-core powers against RAPL and save a profile."""
    from wattlm._files import write_json
    from wattlm.measure.cpu_power import machine_cores, read_cpu_identity
    from wattlm.measure.profile import default_profile_path, load_profile

    identity = read_cpu_identity()
    target = out or default_profile_path()
    if show:
        profile = load_profile(target, expect_cpu=identity)
        typer.echo(json.dumps({k: v for k, v in profile.to_dict().items() if k != "samples"}))
        return
    if install is not None:
        profile = load_profile(install, expect_cpu=identity)  # refused before anything is written
        write_json(target, profile.to_dict())
        typer.echo(f"installed {install} as {target}")
        return
    cores = machine_cores()
    sensor = _sensor(meter.strip().lower(), cores)
    profile, report = _run(sensor, identity, cores, seconds, repeats)
    write_json(target, profile.to_dict())
    _print(report, profile, target)


def _run(sensor, identity, cores, seconds, repeats):
    from wattlm.measure.calibrate import calibrate
    from wattlm.measure.cpu_power import lookup_cpu_power
    from wattlm.measure.estimate_v2 import model_from_table

    def progress(sample) -> None:
        typer.echo(
            f"  {sample.workload}: {sample.time_s:.2f} s, {sample.cpu_time_s:.2f} CPU-s, "
            f"{sample.energy_j:.1f} J",
            err=True,
        )

    try:
        return calibrate(
            sensor,
            identity=identity,
            machine_cores=cores,
            table_model=model_from_table(lookup_cpu_power(identity)),
            seconds=seconds,
            repeats=repeats,
            workload=_workload(),
            on_window=progress,
        )
    finally:
        sensor.close()


def _workload():
    from wattlm.measure.calibrate import matmul_workload

    return matmul_workload


def _print(report, profile, target: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    fit, table = report["fitted"], report["table"]
    grid = Table(title="estimate:cpu-v2 against the sensor (MAPE per workload)")
    for col in ("workload", "fitted %", "bundled %"):
        grid.add_column(col, justify="left" if col == "workload" else "right")
    errors = report["mape_by_workload"]
    for name, err in errors["fitted"].items():
        grid.add_row(name, f"{err:.1f}", f"{errors['table'].get(name, float('nan')):.1f}")
    console = Console()
    console.print(grid)
    console.print(
        f"static {fit['static_core_w']:.3f} W/core (bundled {table['static_core_w']:.3f}), "
        f"dynamic {fit['dynamic_core_w']:.3f} W/core (bundled {table['dynamic_core_w']:.3f}); "
        f"profile saved to {target} (sensor {profile.sensor})"
    )


def register(app: typer.Typer) -> None:
    """Attach the ``calibrate`` command to ``app``."""
    app.command("calibrate")(calibrate_command)
