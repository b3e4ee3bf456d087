"""``wattlm serve --ray``: the server's replicas as Ray Serve deployment replicas.

Each replica is one replica of one Ray Serve deployment, running in its own Ray worker
process: it loads the model (its own engine), meters energy on its own
:class:`~wattlm.serve.windows.WindowedMeter` and serves the same FastAPI app as a plain
``wattlm serve`` (:func:`wattlm.serve.app.build_app`), with its replica id added to each
response's ``usage.replica`` and to ``/health``. Ray Serve's HTTP proxy listens on
``--host``/``--port`` and spreads requests over the replicas.

Threads: the CPUs Ray has (a local Ray gets this machine's usable cores) are split evenly
among the replicas: each replica's engine runs ``CPUs // replicas`` threads and reserves as
many CPUs (``num_cpus``) in Ray, so the default never oversubscribes the cores.

Example:
    >>> RayOptions(replicas=2).replicas
    2
    >>> RayOptions(replicas=0)
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: --replicas must be an integer >= 1, got 0 (--replicas 2 runs two copies of the server)
    >>> replica_threads(cpus=16, replicas=3)
    5
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wattlm._config import Config
from wattlm.errors import WattlmError
from wattlm.serve.config import ServeConfig

APP_NAME = "wattlm"
INSTALL_HINT = 'pip install "ray[serve]" (in wattlm\'s serve extra: pip install "wattlm[serve]")'


@dataclass(frozen=True)
class RayOptions(Config):
    """How ``--ray`` runs: how many replicas, and on which Ray cluster.

    Attributes:
        replicas: copies of the server (one Ray Serve replica each).
        address: a running Ray cluster (``ray://…`` or ``host:port``); ``None`` starts a
            local Ray on loopback for this server and stops it afterwards.
    """

    replicas: int = 2
    address: str | None = None

    config_name = "ray serve options"

    def __post_init__(self) -> None:
        if (
            isinstance(self.replicas, bool)
            or not isinstance(self.replicas, int)
            or self.replicas < 1
        ):
            raise WattlmError(
                f"--replicas must be an integer >= 1, got {self.replicas}",
                hint="--replicas 2 runs two copies of the server",
            )
        if self.address is not None and not self.address.strip():
            raise WattlmError("--ray-address is empty", hint="give host:port or leave it out")


def require_ray_serve() -> Any:
    """The ``ray.serve`` module, or a WattlmError naming the extra that installs it."""
    try:
        import ray  # noqa: F401
        from ray import serve
    except ImportError:
        raise WattlmError(
            "wattlm serve --ray needs Ray Serve (ray[serve]), which is not installed",
            hint=INSTALL_HINT,
        ) from None
    return serve


def usable_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def replica_threads(cpus: int, replicas: int) -> int:
    """Engine threads per replica: the CPUs split evenly (at least 1)."""
    return max(1, cpus // replicas)


def plan_threads(cpus: int, replicas: int, threads: int | None, cap: int | None = None) -> int:
    """Threads per replica: ``threads`` when given, else the split (at most ``cap``).

    Example:
        >>> plan_threads(cpus=8, replicas=2, threads=None)
        4
        >>> plan_threads(cpus=8, replicas=2, threads=None, cap=2)
        2
    """
    if replicas > cpus:
        raise WattlmError(
            f"--replicas {replicas} is more than the {cpus} CPUs Ray has (one each at least)",
            hint=f"use --replicas {cpus} or fewer",
        )
    if threads is not None:
        return threads
    split = replica_threads(cpus, replicas)
    return min(split, cap) if cap else split


def default_engine(cfg: ServeConfig) -> Any:
    """The engine a replica runs for ``cfg`` (the same as a plain ``wattlm serve``)."""
    from wattlm.serve.runner import make_engine

    if cfg.backend == "torch":
        import torch

        torch.set_num_threads(cfg.threads)
    return make_engine(cfg)


def make_deployment(
    cfg: ServeConfig, replicas: int, cpus_per_replica: float, engine_factory: Callable
) -> Any:
    """The bound Ray Serve application: ``replicas`` copies of the wattlm app."""
    serve = require_ray_serve()

    @serve.deployment(
        name="wattlm",
        num_replicas=replicas,
        ray_actor_options={"num_cpus": cpus_per_replica},
        max_ongoing_requests=cfg.max_in_flight,
        graceful_shutdown_timeout_s=cfg.drain_s,
    )
    @serve.ingress()
    class WattlmReplica:
        def __init__(self, cfg: ServeConfig, engine_factory: Callable) -> None:
            self.cfg = cfg
            self.engine_factory = engine_factory

        def __serve_build_asgi_app__(self) -> Any:
            from ray import serve as ray_serve

            from wattlm.serve.app import build_app
            from wattlm.serve.runner import make_windows

            replica = ray_serve.get_replica_context().replica_id.unique_id
            engine = self.engine_factory(self.cfg)
            return build_app(self.cfg, engine, make_windows(self.cfg), replica=replica)

    return WattlmReplica.bind(cfg, engine_factory)


class RayServer:
    """Ray Serve running ``replicas`` copies of the server: :meth:`start`, then :meth:`stop`.

    Uses the Ray this process is already connected to, else ``options.address``, else
    starts a local one on loopback (stopped again by :meth:`stop`).

    Example:
        >>> with RayServer(ServeConfig(model="m.gguf"), RayOptions()) as url:  # doctest: +SKIP
        ...     ...
    """

    def __init__(
        self,
        cfg: ServeConfig,
        options: RayOptions,
        *,
        threads: int | None = None,
        engine_factory: Callable | None = None,
    ) -> None:
        self.cfg = cfg
        self.options = options
        self.threads = threads
        self.engine_factory = engine_factory or default_engine
        self.url = ""
        self.replica_cfg = cfg
        self._own_ray = False
        self._started = False

    def _connect(self) -> Any:
        import ray

        if ray.is_initialized():
            return ray
        quiet = {"log_to_driver": False, "logging_level": _log_level()}
        if self.options.address is None:
            ray.init(
                address="local",
                num_cpus=usable_cores(),
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                **quiet,
            )
        else:
            ray.init(address=self.options.address, **quiet)
        self._own_ray = True
        return ray

    def start(self, timeout_s: float = 300.0) -> str:
        """Deploy the replicas; return the base URL once every replica answers."""
        import logging

        from wattlm.serve.runner import _bind

        serve = require_ray_serve()
        logging.getLogger("ray.serve").setLevel(_log_level())
        if self.cfg.backend == "llamacpp" and self.options.address is None:
            from wattlm.export.gguf_reader import check_gguf

            check_gguf(self.cfg.model)  # a local Ray sees the same files: fail before it starts
        sock = _bind(self.cfg)  # a taken port fails here, before Ray starts
        host, port = sock.getsockname()[:2]
        sock.close()
        ray = self._connect()
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
            node_cpus = _largest_node_cpus(ray) or cpus  # a replica runs on one node
            replicas = self.options.replicas
            threads = plan_threads(
                cpus, replicas, self.threads, cap=min(self.cfg.threads, node_cpus)
            )
            self.replica_cfg = dataclasses.replace(self.cfg, threads=threads, port=port)
            serve.start(http_options={"host": self.cfg.host, "port": port})
            self._started = True
            reserved = min(threads, cpus / replicas, node_cpus)  # the reservations always fit
            app = make_deployment(self.replica_cfg, replicas, reserved, self.engine_factory)
            try:
                serve.run(app, name=APP_NAME, route_prefix="/")
            except RuntimeError:
                raise WattlmError(
                    f"a Ray Serve replica did not start: {_replica_error(serve)}",
                    hint="the same MODEL and options should serve without --ray",
                ) from None
            self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_ready(self, timeout_s: float) -> None:
        from wattlm.serve._http import http_client_module

        httpx = http_client_module()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise WattlmError(f"Ray Serve did not answer at {self.url} in {timeout_s:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        """Shut Ray Serve down (replicas drain for ``drain_s``); stop a Ray we started."""
        import ray

        if self._started and ray.is_initialized():
            from ray import serve

            serve.shutdown()
            self._started = False
        if self._own_ray:
            ray.shutdown()
            self._own_ray = False

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _largest_node_cpus(ray: Any) -> int:
    """CPUs of the biggest live node of the cluster (0 when Ray does not say)."""
    try:
        nodes = ray.nodes()
    except Exception:  # only a tighter bound
        return 0
    return int(max((n["Resources"].get("CPU", 0) for n in nodes if n.get("Alive")), default=0))


def _log_level() -> str:
    """Ray's and Ray Serve's log level in this process: ``WATTLM_SERVE_LOG`` (warning)."""
    return os.environ.get("WATTLM_SERVE_LOG", "warning").upper()


def _replica_error(serve: Any) -> str:
    """The last line of the error a replica's constructor raised (Ray keeps its traceback)."""
    try:
        status = serve.status().applications[APP_NAME]
        text = "\n".join(d.message for d in status.deployments.values()) or status.message
    except Exception:  # the status only makes the message better
        return "see the Ray Serve logs"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else "see the Ray Serve logs"
    return last.split("WattlmError: ", 1)[-1]


def serve_ray(
    cfg: ServeConfig,
    options: RayOptions,
    *,
    threads: int | None = None,
    on_ready: Callable[[str, ServeConfig], None] | None = None,
) -> None:
    """Serve until SIGTERM/Ctrl-C, then shut Ray Serve (and a Ray it started) down."""
    import signal
    import threading

    require_ray_serve()
    stopping = threading.Event()
    server = RayServer(cfg, options, threads=threads)
    previous = {}
    try:
        url = server.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stopping.set())
        if on_ready is not None:
            on_ready(url, server.replica_cfg)
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
