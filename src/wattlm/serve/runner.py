"""Start a server: the engine, the meter, the app, and uvicorn with a draining SIGTERM.

On SIGTERM (or Ctrl-C) the server stops taking requests (new ones get 503 on open
connections, and the port closes), lets the requests in flight finish for up to
``drain_s`` seconds, then stops llama.cpp and exits.

Example:
    >>> from wattlm.serve.config import ServeConfig
    >>> serve(ServeConfig(model="model.gguf"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any

from wattlm.errors import WattlmError
from wattlm.serve.config import ServeConfig
from wattlm.serve.windows import WindowedMeter


def make_engine(cfg: ServeConfig) -> Any:
    """The engine for ``cfg.backend``."""
    if cfg.backend == "llamacpp":
        from wattlm.serve.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine(cfg)
    from wattlm.serve.torch_engine import TorchEngine

    return TorchEngine(cfg)


def make_windows(cfg: ServeConfig) -> WindowedMeter:
    """A windowed meter of this process (llama.cpp runs in it) of kind ``cfg.meter``."""
    from wattlm.measure.factory import make_meter

    return WindowedMeter(make_meter(cfg.meter, idle_seconds=0.5))


def _uvicorn_server(cfg: ServeConfig, app: Any) -> Any:
    try:
        import uvicorn
    except ImportError:
        raise WattlmError(
            "wattlm serve needs uvicorn and fastapi", hint='pip install "wattlm[serve]"'
        ) from None

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.serve.draining = True
            super().handle_exit(sig, frame)
            # a drained shutdown is a normal exit: uvicorn would re-raise the signal after it
            self._captured_signals.clear()

    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        log_level=os.environ.get("WATTLM_SERVE_LOG", "warning"),
        access_log=False,
        timeout_graceful_shutdown=int(cfg.drain_s) or None,
        lifespan="on",
        ws="none",
    )
    return DrainingServer(config)


def _bind(cfg: ServeConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as err:
        sock.close()
        raise WattlmError(
            f"cannot listen on {cfg.host}:{cfg.port}: {err.strerror}",
            hint="choose another --port, or --port 0 for any free one",
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def serve(
    cfg: ServeConfig, *, engine: Any = None, windows: Any = None, on_ready: Any = None
) -> None:
    """Serve until SIGTERM/Ctrl-C. ``on_ready(url)`` is called once the port is open."""
    from wattlm.serve.app import build_app

    sock = _bind(cfg)  # fail on a taken port before loading the model
    engine = engine if engine is not None else make_engine(cfg)
    windows = windows if windows is not None else make_windows(cfg)
    app = build_app(cfg, engine, windows)
    server = _uvicorn_server(cfg, app)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started and on_ready is not None:
            on_ready(url)
        await task

    asyncio.run(main())


class BackgroundServer:
    """A server in a thread (tests, benchmarks): ``url``, then :meth:`stop`.

    Example:
        >>> with BackgroundServer(cfg, engine=engine, windows=wm) as url:  # doctest: +SKIP
        ...     ...
    """

    def __init__(self, cfg: ServeConfig, *, engine: Any = None, windows: Any = None) -> None:
        from wattlm.serve.app import build_app

        self.cfg = cfg
        self._sock = _bind(cfg)
        engine = engine if engine is not None else make_engine(cfg)
        self.windows = windows if windows is not None else make_windows(cfg)
        self.app = build_app(cfg, engine, self.windows)
        self.server = _uvicorn_server(cfg, self.app)
        self.server.install_signal_handlers = lambda: None  # not the main thread
        host, port = self._sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._run, name="wattlm-serve", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self._sock]))
        except BaseException as err:  # surfaced by start()/stop()
            self._error = err

    def start(self) -> str:
        """Start serving; return the base URL once the port answers."""
        import time

        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 30 s")
            time.sleep(0.02)
        return self.url

    def drain(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does (returns at once)."""
        self.server.handle_exit(15, None)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Drain and wait for the thread to end."""
        self.drain()
        self._thread.join(timeout_s)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
