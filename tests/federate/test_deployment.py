"""The deployment path: a SuperLink and two SuperNodes as separate processes on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from wattlm.federate.config import FederateConfig
from wattlm.federate.run import federate
from wattlm.report.result import validate_result

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    with log.open("wb") as fh:
        return subprocess.Popen(
            args, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _wait_port(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flower-superlink", path=str(BIN)) is None, reason="no SuperLink")
def test_superlink_and_two_supernodes_run_a_round(tiny_setup, tmp_path):
    model, data = tiny_setup
    link = _free_port()
    procs = [
        _start(
            [
                str(BIN / "flower-superlink"),
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--port",
                str(link),
                "--database",
                str(tmp_path / "link.db"),
            ],
            tmp_path / "superlink.log",
        )
    ]
    try:
        _wait_port(link)
        for i in range(2):
            # node 0 keeps its top-k residuals in a folder of its own; node 1 in memory only
            own = f' residual-dir="{tmp_path / "node-0"}"' if i == 0 else ""
            procs.append(
                _start(
                    [
                        str(BIN / "flower-supernode"),
                        "--insecure",
                        "--superlink",
                        f"127.0.0.1:{link}",
                        "--port",
                        str(_free_port()),
                        "--node-config",
                        f"partition-id={i} num-partitions=2{own}",
                    ],
                    tmp_path / f"supernode-{i}.log",
                )
            )
        cfg = FederateConfig(
            model=str(model), data=str(data), clients=2, rounds=1, lr=1e-3, batch_size=8,
            seq_len=16, timeout_s=300, compression="topk", topk_fraction=0.1,
        )  # fmt: skip
        result = federate(cfg, tmp_path / "run", superlink=f"127.0.0.1:{link}", progress=False)
    finally:
        for p in reversed(procs):  # each in its own session: its SuperExec children go too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    validate_result(result)
    assert result["runtime"]["mode"] == "deployment"
    (rnd,) = result["rounds"]
    assert [c["partition"] for c in rnd["clients"]] == [0, 1]
    assert all(c["status"] == "ok" and c["energy_j"] > 0 for c in rnd["clients"])
    assert result["totals"]["bytes"] > 0
    assert [c["residual_stored"] for c in rnd["clients"]] == [True, False]
    (run_dir,) = (tmp_path / "node-0").iterdir()  # run-<key>, the key kept in the checkpoint
    assert run_dir.name.startswith("run-") and len(run_dir.name) == 4 + 32
    assert sorted(p.name for p in run_dir.iterdir()) == ["client-0-round-1.npz"]
    assert "clients [1] live only in their Flower context" in result["notes"][-1]
