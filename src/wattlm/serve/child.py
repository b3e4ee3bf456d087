"""``wattlm serve`` as a child process on a free loopback port, with a random API key.

Started with this Python (``python -m wattlm serve MODEL --host 127.0.0.1 --port P ...``),
the key in its environment (``WATTLM_API_KEY``, not on its command line), its output in a
log file. :meth:`ChildServer.start` returns once ``/health`` answers; a child that exits
first is reported with its own error line. :meth:`ChildServer.stop` sends SIGTERM (the
server drains and exits) and kills it only if it has not exited in time.

Example:
    >>> child = ChildServer("model.gguf", ["--slots", "2"], log_path=Path("serve.log"))
    >>> url = child.start()  # doctest: +SKIP
    >>> child.stop()  # doctest: +SKIP
    0
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from wattlm.errors import WattlmError

PORT_RETRIES = 3


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now.

    Example:
        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _error_line(log: str) -> str:
    """The child's ``error: ...`` line (the CLI's one-line error), else its last line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith("error:")]
    if errors:
        return errors[-1][len("error:") :].strip()
    return lines[-1] if lines else "no output"


class ChildServer:
    """One ``wattlm serve MODEL *args`` process (see the module docstring)."""

    def __init__(
        self, model: str, args: list[str], *, log_path: Path, start_timeout_s: float = 600.0
    ) -> None:
        self.model = model
        self.args = list(args)
        self.log_path = Path(log_path)
        self.start_timeout_s = start_timeout_s
        self.api_key = secrets.token_hex(16)
        self.url: str | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The server process's id (started)."""
        if self._proc is None:
            raise RuntimeError("the child server is not started")
        return self._proc.pid

    def _spawn(self, port: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "wattlm", "serve", self.model, "--host", "127.0.0.1",
               "--port", str(port), *self.args]  # fmt: skip
        env = {**os.environ, "WATTLM_API_KEY": self.api_key}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w", encoding="utf-8") as log:
            return subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def _wait_health(self, proc: subprocess.Popen, url: str) -> bool:
        """True once ``/health`` answers 200; False when the child exited first."""
        from wattlm.serve._http import http_client_module

        httpx = http_client_module()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self._terminate(proc, 30.0)
        raise WattlmError(
            f"wattlm serve {self.model} {' '.join(self.args)} did not answer /health within "
            f"{self.start_timeout_s:g} s",
            hint=f"see its log {self.log_path}",
        )

    def start(self) -> str:
        """Start the server; return its base URL (``http://127.0.0.1:PORT``) once healthy."""
        for _attempt in range(PORT_RETRIES):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = self._spawn(port)
            if self._wait_health(proc, url):
                self._proc, self.url = proc, url
                return url
            message = _error_line(self.log_path.read_text(encoding="utf-8", errors="replace"))
            if "cannot listen" not in message:  # a port taken meanwhile: try another one
                break
        raise WattlmError(
            f"wattlm serve {self.model} {' '.join(self.args)} did not start: {message}",
            hint=f"its log: {self.log_path}",
        )

    @staticmethod
    def _terminate(proc: subprocess.Popen, timeout_s: float) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM, wait up to ``timeout_s`` (then kill); the exit code (None: never started)."""
        if self._proc is None:
            return None
        rc = self._terminate(self._proc, timeout_s)
        self._proc = None
        return rc
