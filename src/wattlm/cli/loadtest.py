"""``wattlm loadtest URL``: load a server, write ``loadtest.json`` and ``loadtest.md``.

Example (shell)::

    wattlm loadtest http://127.0.0.1:8000 --requests 200 --concurrency 16 \\
        --rate 0.5,1,2,4 --out runs/load
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def loadtest(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://127.0.0.1:8000.")],
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
    meter: Annotated[str, typer.Option(help="Meter for --server-pid.")] = "auto",
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Let the server reuse cached prompts.")
    ] = True,
) -> None:
    """Send a bounded, seeded workload to URL and report latency and energy per load."""
    from wattlm.data.text import load_text
    from wattlm.errors import WattlmError
    from wattlm.serve.loadtest import LoadConfig, run_loadtest, write_loadtest
    from wattlm.serve.workload import parse_range

    try:
        rates = tuple(float(r) for r in rate.split(",") if r.strip())
    except ValueError:
        raise WattlmError(f"--rate must be numbers separated by commas, got {rate!r}") from None
    cfg = LoadConfig(
        url=url,
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
    record = run_loadtest(cfg, load_text(text, "test"))
    json_path, md_path = write_loadtest(record, out)
    typer.echo(md_path.read_text(encoding="utf-8"))
    typer.echo(f"wrote {json_path} and {md_path}", err=True)


def register(app: typer.Typer) -> None:
    """Attach ``wattlm loadtest`` to the root app."""
    app.command("loadtest")(loadtest)
