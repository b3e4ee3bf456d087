"""The deployment path: the same ServerApp and ClientApp, run by a SuperLink and SuperNodes
as separate processes (on one machine or many), submitted with ``flwr run``.

Each SuperNode is started with its partition in its node config, e.g.::

    flower-superlink --insecure --disable-runtime-dependency-installation
    flower-supernode --insecure --superlink 127.0.0.1:9092 --port 9094 \\
        --node-config "partition-id=0 num-partitions=2"
    wattlm federate --clients 2 --superlink 127.0.0.1:9093 --out runs/fed

With ``--compression topk`` a SuperNode whose node config also names a folder of its own
(``residual-dir="/var/lib/wattlm"``) keeps its top-k residuals there, so that a resumed run
restores them (:mod:`wattlm.federate.residuals`); without it they restart at zero.

``submit`` writes a Flower app folder under ``<out>/flower-app`` (a ``pyproject.toml``
naming :data:`server` and :data:`client`, the run's config in ``[tool.flwr.app.config]``)
and a Flower config naming the SuperLink, then runs ``flwr run ... --stream``. The
ServerApp (in the SuperLink's ServerApp process) runs the rounds and writes
``federate.json`` itself.

Example:
    >>> from wattlm.federate.config import FederateConfig
    >>> submit(FederateConfig(clients=2), Path("runs/fed"), "127.0.0.1:9093")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from wattlm.errors import WattlmError
from wattlm.federate.config import FederateConfig

if TYPE_CHECKING:  # pragma: no cover
    from flwr.app import Context
    from flwr.serverapp import Grid

APP_MODULE = "wattlm_federate_app"


def make_apps():
    """``(server, client)``: the deployed ServerApp (:func:`main`) and the ClientApp."""
    from flwr.serverapp import ServerApp

    from wattlm.federate.client import make_client_app

    server = ServerApp()
    server.main()(main)
    return server, make_client_app()


def main(grid: Grid, context: Context) -> None:
    """The deployed ServerApp: the rounds, then ``federate.json`` and the reports."""
    import flwr

    from wattlm.federate.run import finish, precheck
    from wattlm.federate.server import run_rounds

    cfg = FederateConfig.from_dict(json.loads(str(context.run_config["job"])))
    out = Path(str(context.run_config["out"]))
    resume = bool(context.run_config["resume"])
    record = run_rounds(grid, cfg, out, resume=resume)
    runtime = {"mode": "deployment", "flower_version": flwr.__version__, "backend": "superlink"}
    finish(cfg, out, record, precheck(cfg), runtime)


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_app(config: FederateConfig, out: Path, *, resume: bool) -> Path:
    """The Flower app folder for this run (``<out>/flower-app``)."""
    folder = out / "flower-app"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{APP_MODULE}.py").write_text(
        '"""Flower app entry points of a wattlm federate run."""\n\n'
        "from wattlm.federate.deploy import make_apps\n\n"
        "server, client = make_apps()\n"
        '__all__ = ["client", "server"]\n',
        encoding="utf-8",
    )
    job = json.dumps(config.to_dict(), sort_keys=True)
    (folder / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["hatchling"]\n'
        'build-backend = "hatchling.build"\n\n'
        "[project]\n"
        'name = "wattlm-federate-app"\n'
        'version = "1.0.0"\n'
        "dependencies = []\n\n"
        "[tool.hatch.build.targets.wheel]\n"
        'packages = ["."]\n\n'
        "[tool.flwr.app]\n"
        'publisher = "wattlm"\n\n'
        "[tool.flwr.app.components]\n"
        f'serverapp = "{APP_MODULE}:server"\n'
        f'clientapp = "{APP_MODULE}:client"\n\n'
        "[tool.flwr.app.config]\n"
        f"job = {_toml_str(job)}\n"
        f"out = {_toml_str(str(out.resolve()))}\n"
        f"resume = {'true' if resume else 'false'}\n",
        encoding="utf-8",
    )
    return folder


def write_flower_home(out: Path, superlink: str) -> Path:
    """A Flower config (``FLWR_HOME``) whose default connection is ``superlink``."""
    home = out / "flower-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "wattlm"\n\n'
        f"[superlink.wattlm]\naddress = {_toml_str(superlink)}\ninsecure = true\n",
        encoding="utf-8",
    )
    return home


def submit(
    config: FederateConfig, out: Path, superlink: str, *, resume: bool, progress: bool = True
) -> None:
    """Submit the run to the SuperLink at ``superlink`` and wait for ``federate.json``."""
    from wattlm.federate.run import RESULT

    app = write_app(config, out, resume=resume)
    env = {**os.environ, "FLWR_HOME": str(write_flower_home(out, superlink))}
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    flwr = Path(sys.executable).with_name("flwr")
    cmd = [str(flwr), "run", str(app), "wattlm", "--stream"]
    proc = subprocess.run(cmd, env=env, capture_output=not progress, text=True, check=False)
    if proc.returncode != 0 or not (out / RESULT).is_file():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] if not progress else []
        raise WattlmError(
            f"the deployed run did not finish (flwr run exit {proc.returncode})"
            + (f": {tail[0]}" if tail else ""),
            hint=f"check the SuperLink at {superlink} and that {config.clients} SuperNodes run",
        )
