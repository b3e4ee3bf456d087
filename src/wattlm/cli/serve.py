"""``wattlm serve MODEL|RUN_DIR``: an OpenAI-compatible server that tells each request its energy.

A GGUF file runs on llama.cpp's own server (continuous batching over ``--slots``, prompt
cache); an optimize run folder serves its recommended model with its batch size as slots
and its threads. See ``docs/serving.md``.

Example (shell)::

    wattlm serve runs/optimize                       # the recommendation, on 127.0.0.1:8000
    wattlm serve model.gguf --slots 8 --port 8080 --api-key "$KEY"
    wattlm serve model.gguf --ray --replicas 2       # two Ray Serve replicas behind one port
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def serve(
    model: Annotated[str, typer.Argument(help="A GGUF file, a model folder, or an optimize run.")],
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8000,
    api_key: Annotated[
        Optional[str],  # noqa: UP045 - typer reads the annotation at runtime (Python 3.10)
        typer.Option(envvar="WATTLM_API_KEY", help="Require this bearer key on /v1/*."),
    ] = None,
    slots: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Requests decoded together (default 4, or the run's batch size)."),
    ] = None,
    threads: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="CPU threads (default: all, or the run's threads)."),
    ] = None,
    context_tokens: Annotated[int, typer.Option(help="Prompt + new tokens per slot.")] = 2048,
    max_queue: Annotated[int, typer.Option(help="Requests that may wait; then 429.")] = 64,
    max_tokens: Annotated[
        int, typer.Option(help="New tokens when a request gives no max_tokens.")
    ] = 256,
    meter: Annotated[str, typer.Option(help="auto, rapl, estimate or null.")] = "auto",
    window_s: Annotated[float, typer.Option(help="Energy window length in seconds.")] = 0.5,
    drain_s: Annotated[float, typer.Option(help="Seconds SIGTERM waits for requests.")] = 30.0,
    backend: Annotated[str, typer.Option(help="llamacpp or torch (default: from MODEL).")] = "",
    ray: Annotated[
        bool, typer.Option("--ray", help="Run --replicas copies as Ray Serve replicas.")
    ] = False,
    replicas: Annotated[int, typer.Option(help="With --ray: copies of the server.")] = 2,
    ray_address: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="With --ray: a running Ray cluster (default: a local Ray)."),
    ] = None,
) -> None:
    """Serve MODEL (or an optimize run's recommendation) with per-request energy."""
    from wattlm.serve.config import ServeConfig
    from wattlm.serve.recommendation import is_run_dir, read_recommendation
    from wattlm.serve.runner import serve as run

    ray_options = _ray_options(ray, replicas, ray_address)
    fields: dict = {"model": model, "backend": backend}
    if is_run_dir(model):
        fields.update(read_recommendation(Path(model)))
    if slots is not None:
        fields["slots"] = slots
    if threads is not None:
        fields["threads"] = threads
    cfg = ServeConfig(
        host=host,
        port=port,
        api_key=api_key,
        context_tokens=context_tokens,
        max_queue=max_queue,
        default_max_tokens=max_tokens,
        meter=meter,
        window_s=window_s,
        drain_s=drain_s,
        **fields,
    )

    def ready(url: str) -> None:
        typer.echo(
            f"serving {cfg.model_id} ({cfg.backend}, {cfg.slots} slots, {cfg.threads} threads) "
            f"at {url}/v1 — Ctrl-C or SIGTERM drains and stops",
            err=True,
        )

    if ray_options is None:
        run(cfg, on_ready=ready)
        return
    from wattlm.serve.ray_serve import serve_ray

    def ray_ready(url: str, replica_cfg: ServeConfig) -> None:
        typer.echo(
            f"serving {cfg.model_id} ({cfg.backend}) on {ray_options.replicas} Ray Serve "
            f"replicas ({replica_cfg.slots} slots, {replica_cfg.threads} threads each) at "
            f"{url}/v1 — Ctrl-C or SIGTERM shuts Ray Serve down",
            err=True,
        )

    serve_ray(cfg, ray_options, threads=threads, on_ready=ray_ready)


def _ray_options(ray: bool, replicas: int, address: str | None):
    """The ``--ray`` options checked before anything loads (None without ``--ray``)."""
    from wattlm.errors import WattlmError

    if not ray:
        if replicas != 2 or address is not None:
            raise WattlmError(
                "--replicas and --ray-address only apply with --ray", hint="add --ray"
            )
        return None
    from wattlm.serve.ray_serve import RayOptions, require_ray_serve

    options = RayOptions(replicas=replicas, address=address)
    require_ray_serve()
    return options


def register(app: typer.Typer) -> None:
    """Attach ``wattlm serve`` to the root app."""
    app.command("serve")(serve)
