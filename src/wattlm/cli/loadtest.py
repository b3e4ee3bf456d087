"""``wattlm loadtest URL``: load a server, write ``loadtest.json`` and ``loadtest.md``.

``wattlm loadtest --serve MODEL --slots 1,2,4,8 --rate R --slo-p99-ms N`` starts
``wattlm serve MODEL`` once per slot count instead, loads each the same way and chooses
the slot count with the least energy per request under the p99 latency limit
(:mod:`wattlm.serve.slotsweep`).

Example (shell)::

    wattlm loadtest http://127.0.0.1:8000 --requests 200 --concurrency 16 \\
        --rate 0.5,1,2,4 --out runs/load
    wattlm loadtest --serve model.gguf --slots 1,2,4,8 --rate 2 --slo-p99-ms 3000 \\
        --threads 4 --out runs/slots
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def loadtest(
    url: Annotated[
        Optional[str],  # noqa: UP045 - typer reads the annotation at runtime (Python 3.10)
        typer.Argument(help="The server, e.g. http://127.0.0.1:8000 (or give --serve)."),
    ] = None,
    *,
    out: Annotated[Path, typer.Option(help="Folder for loadtest.json and loadtest.md.")],
    requests: Annotated[int, typer.Option(help="Requests per rate.")] = 100,
    concurrency: Annotated[int, typer.Option(help="Most requests open at once.")] = 8,
    rate: Annotated[
        str, typer.Option(help="Arrival rate(s) in requests/s, e.g. 1,2,4 (empty: no pacing).")
    ] = "",
    arrival: Annotated[str, typer.Option(help="poisson or fixed.")] = "poisson",
    prompt_words: Annotated[str, typer.Option(help="Words per prompt, N or MIN..MAX.")] = "32..128",
    max_tokens: Annotated[str, typer.Option(help="New tokens, N or MIN..MAX.")] = "16..64",
    prefix_words: Annotated[int, typer.Option(help="Shared prefix words (0: none).")] = 0,
    time_limit: Annotated[float, typer.Option(help="Seconds per rate at most.")] = 300.0,
    text: Annotated[str, typer.Option(help="wiki-sample or a .txt file.")] = "wiki-sample",
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 0,
    api_key: Annotated[
        Optional[str],  # noqa: UP045 - typer reads the annotation at runtime (Python 3.10)
        typer.Option(envvar="WATTLM_API_KEY", help="Bearer key of the server."),
    ] = None,
    server_pid: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Meter this local process too (RAPL, else CPU-time estimate)."),
    ] = None,
    meter: Annotated[
        str, typer.Option(help="Meter for --server-pid (with --serve: of each server too).")
    ] = "auto",
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Let the server reuse cached prompts.")
    ] = True,
    serve: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Instead of URL: start `wattlm serve MODEL` (GGUF, model folder or optimize "
            "run) once per --slots value and choose the slots."
        ),
    ] = None,
    slots: Annotated[
        str, typer.Option(help="With --serve: slot counts to try, e.g. 1,2,4,8 (the default).")
    ] = "",
    slo_p99_ms: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="With --serve: p99 end-to-end latency limit in ms for the choice."),
    ] = None,
    threads: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="With --serve: CPU threads of each server (default: serve's)."),
    ] = None,
    context_tokens: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="With --serve: prompt + new tokens per slot (default: serve's)."),
    ] = None,
) -> None:
    """Send a bounded, seeded workload to URL and report latency and energy per load.

    With --serve MODEL instead of URL: serve MODEL once per --slots value, load each at
    --rate, and choose the slots with the least J/request under --slo-p99-ms.
    """
    from wattlm.data.text import load_text
    from wattlm.errors import WattlmError
    from wattlm.serve.loadtest import LoadConfig, run_loadtest, write_loadtest
    from wattlm.serve.workload import parse_range

    try:
        rates = tuple(float(r) for r in rate.split(",") if r.strip())
    except ValueError:
        raise WattlmError(f"--rate must be numbers separated by commas, got {rate!r}") from None
    sweep = _sweep_config(url, serve, slots, slo_p99_ms, threads, context_tokens, meter)
    if sweep is not None and server_pid is not None:
        raise WattlmError("--server-pid does not go with --serve", hint="the sweep meters the "
                          "servers it starts")  # fmt: skip
    cfg = LoadConfig(
        url=url or "http://127.0.0.1:0",
        requests=requests,
        concurrency=concurrency,
        rates=rates,
        arrival=arrival,
        prompt_words=parse_range(prompt_words, "--prompt-words"),
        max_tokens=parse_range(max_tokens, "--max-tokens"),
        prefix_words=prefix_words,
        time_limit_s=time_limit,
        text=text,
        seed=seed,
        api_key=api_key,
        server_pid=server_pid,
        meter=meter,
        cache_prompt=cache,
    )
    if sweep is None:
        record = run_loadtest(cfg, load_text(text, "test"))
    else:
        from wattlm.serve.slotsweep import run_slot_sweep

        record = run_slot_sweep(sweep, cfg, load_text(text, "test"), log_dir=out,
                                on_level=lambda e: typer.echo(_level_line(e)))  # fmt: skip
    json_path, md_path = write_loadtest(record, out)
    typer.echo(md_path.read_text(encoding="utf-8"))
    choice = record.get("choice")
    if choice is not None and choice["slots"] is not None:
        typer.echo(("choice: " if choice["meets_slo"] else "objective not met; lowest p99: ")
                   + choice["command"])  # fmt: skip
    typer.echo(f"wrote {json_path} and {md_path}", err=True)


def _sweep_config(url, serve, slots, slo_p99_ms, threads, context_tokens, meter):
    """The slot sweep's config with --serve (None without), after the option checks."""
    from wattlm.errors import WattlmError
    from wattlm.serve.slotsweep import DEFAULT_SLOTS, SweepConfig

    if serve is None:
        given = [name for name, value in (("--slots", slots or None), ("--slo-p99-ms",
                 slo_p99_ms), ("--threads", threads), ("--context-tokens", context_tokens))
                 if value is not None]  # fmt: skip
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise WattlmError(f"{', '.join(given)} {verb} only with --serve MODEL",
                              hint="add --serve MODEL instead of the URL")  # fmt: skip
        if url is None:
            raise WattlmError("give a server URL or --serve MODEL",
                              hint="e.g. wattlm loadtest http://127.0.0.1:8000 --out DIR")  # fmt: skip
        return None
    if url is not None:
        raise WattlmError(f"give either a URL ({url}) or --serve {serve}, not both",
                          hint="--serve starts its own servers")  # fmt: skip
    try:
        counts = tuple(int(s) for s in slots.split(",") if s.strip()) if slots else DEFAULT_SLOTS
    except ValueError:
        raise WattlmError(f"--slots must be integers separated by commas, got {slots!r}",
                          hint="e.g. --slots 1,2,4,8") from None  # fmt: skip
    return SweepConfig(model=serve, slots=counts, slo_p99_ms=slo_p99_ms, threads=threads,
                       context_tokens=context_tokens, meter=meter)  # fmt: skip


def _level_line(entry: dict) -> str:
    """One progress line per finished slot count."""
    from wattlm.serve.loadreport import _sig

    if entry.get("start_error"):
        return f"slots {entry['slots']}: did not start: {entry['start_error']}"
    p99 = entry["e2e_latency_p99_ms"]
    energy = entry["meter_j_per_request"]
    source = "meter"
    if energy is None:
        energy, source = entry["server_j_per_request"], "server"
    return (
        f"slots {entry['slots']}: {entry['ok']}/{entry['requests']} ok, p99 latency "
        f"{'–' if p99 is None else f'{p99:.1f} ms'}, {_sig(energy)} J/request ({source})"
    )


def register(app: typer.Typer) -> None:
    """Attach ``wattlm loadtest`` to the root app."""
    app.command("loadtest")(loadtest)
