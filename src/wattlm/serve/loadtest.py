"""``wattlm loadtest``: drive a server at one or more arrival rates, write ``loadtest.json``.

For each rate (a sweep from light to saturating load when several are given) the same
seeded workload is sent (see :mod:`~wattlm.serve.workload`), timed by the client
(:mod:`~wattlm.serve.loadrun`) and summarised (:mod:`~wattlm.serve.loadstats`). With
``server_pid`` the server's energy is also read by wattlm's own meter over each level: RAPL
when readable (the whole CPU package: it includes anything else the machine runs), else the
estimate from that process's CPU time.

Example:
    >>> cfg = LoadConfig(url="http://127.0.0.1:8000", requests=20, concurrency=4)
    >>> cfg.base_url
    'http://127.0.0.1:8000/v1'
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wattlm._config import Config
from wattlm.errors import WattlmError
from wattlm.serve.loadrun import run_workload
from wattlm.serve.loadstats import summarise
from wattlm.serve.workload import ARRIVALS, make_workload

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class LoadConfig(Config):
    """One load test (a sweep when ``rates`` has several entries).

    Attributes:
        url: the server (``http://host:port``, with or without ``/v1``).
        requests: requests sent at each rate.
        concurrency: most requests open at once.
        rates: arrival rates in requests/s; ``()``: no pacing (all at once, concurrency-bound).
        arrival: ``poisson`` or ``fixed``.
        prompt_words: MIN..MAX words per prompt (before the shared prefix).
        max_tokens: MIN..MAX tokens to generate per request.
        prefix_words: words of one shared prefix put before every prompt (0: none).
        time_limit_s: each rate's time limit.
        text: ``wiki-sample`` (embedded) or a ``.txt`` path the prompts are cut from.
        cache_prompt: False asks the server not to reuse cached prompt tokens (llama.cpp's
            ``cache_prompt``), to measure what the prefix cache saves.
        seed, api_key, model, server_pid, meter: as named.
    """

    url: str
    requests: int = 100
    concurrency: int = 8
    rates: tuple[float, ...] = ()
    arrival: str = "poisson"
    prompt_words: tuple[int, int] = (32, 128)
    max_tokens: tuple[int, int] = (16, 64)
    prefix_words: int = 0
    time_limit_s: float = 300.0
    text: str = "wiki-sample"
    seed: int = 0
    api_key: str | None = None
    model: str = "default"
    server_pid: int | None = None
    meter: str = "auto"
    cache_prompt: bool = True

    config_name = "load test config"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WattlmError(
                f"not a server URL: {self.url!r}", hint="give http://HOST:PORT, e.g. the "
                "address `wattlm serve` printed"
            )  # fmt: skip
        if self.requests < 1:
            raise WattlmError(f"--requests must be >= 1, got {self.requests}")
        if self.concurrency < 1:
            raise WattlmError(f"--concurrency must be >= 1, got {self.concurrency}")
        if any(not r > 0 for r in self.rates):
            raise WattlmError(f"--rate values must be > 0 requests/s, got {list(self.rates)}")
        if self.arrival not in ARRIVALS:
            raise WattlmError(f"unknown --arrival {self.arrival!r}", hint=" or ".join(ARRIVALS))
        if not self.time_limit_s > 0:
            raise WattlmError(f"--time-limit must be > 0 s, got {self.time_limit_s}")

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (ends with ``/v1``)."""
        url = self.url.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"

    def to_dict(self) -> dict[str, Any]:
        """Settings as JSON-ready data (the API key itself is never written)."""
        out = super().to_dict()
        out["api_key"] = "set" if self.api_key else None
        return out


def _server_meter(cfg: LoadConfig) -> Any:
    if cfg.server_pid is None:
        return None
    import psutil

    from wattlm.measure.factory import make_meter

    try:
        proc = psutil.Process(cfg.server_pid)
    except psutil.Error as err:
        raise WattlmError(f"cannot see server process {cfg.server_pid}: {err}") from None

    def cpu_s() -> float:
        t = proc.cpu_times()
        return t.user + t.system

    return make_meter(cfg.meter, cpu_clock=cpu_s, idle_seconds=0.5)


def _server_info(cfg: LoadConfig) -> dict[str, Any] | None:
    from wattlm.serve._http import http_client_module

    httpx = http_client_module()

    headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    try:
        r = httpx.get(cfg.base_url + "/models", headers=headers, timeout=10)
        return r.json()["data"][0] if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, IndexError):
        return None


def run_loadtest(cfg: LoadConfig, text: str) -> dict[str, Any]:
    """Run every rate of ``cfg`` on prompts cut from ``text``; return the loadtest record."""
    info = _server_info(cfg)
    if info is None:
        raise WattlmError(
            f"no OpenAI-compatible server answers at {cfg.base_url}/models",
            hint="start one with `wattlm serve MODEL` and pass its address (and --api-key)",
        )
    meter = _server_meter(cfg)
    levels = []
    for level, rate in enumerate(cfg.rates or (None,)):
        plan = make_workload(
            text,
            requests=cfg.requests,
            prompt_words=cfg.prompt_words,
            max_tokens=cfg.max_tokens,
            prefix_words=cfg.prefix_words,
            rate=rate,
            arrival=cfg.arrival,
            seed=cfg.seed,
            offset_words=level * cfg.requests * cfg.prompt_words[1],
        )
        if meter is not None:
            meter.begin_window("level")
        records, wall_s = asyncio.run(
            run_workload(
                cfg.base_url,
                plan,
                concurrency=cfg.concurrency,
                model=cfg.model,
                api_key=cfg.api_key,
                time_limit_s=cfg.time_limit_s,
                extra_body=None if cfg.cache_prompt else {"cache_prompt": False},
            )
        )
        m = meter.end_window("level") if meter is not None else None
        summary = summarise(
            records,
            wall_s=wall_s,
            meter_energy_j=m.energy_j if m is not None else None,
            meter_source=m.source if m is not None else None,
        )
        levels.append(
            {"rate": rate, "summary": summary, "requests": [r.to_dict() for r in records]}
        )
    notes = [
        "server energy: the sum of the energy_j each answer's usage carried (the server's "
        "own per-request attribution); meter energy: wattlm's meter over the whole level",
    ]
    return loadtest_record(
        target=cfg.base_url,
        config=cfg.to_dict(),
        server=info,
        meter=meter.describe() if meter is not None else None,
        levels=levels,
        notes=notes,
    )


def loadtest_record(
    *,
    target: str,
    config: dict[str, Any],
    server: dict[str, Any] | None,
    meter: dict[str, Any] | None,
    levels: list[dict[str, Any]],
    notes: list[str],
    **sections: Any,
) -> dict[str, Any]:
    """The ``loadtest.json`` record: header, ``levels``, extra ``sections`` (a slot sweep's
    ``sweep`` and ``choice``), then ``notes`` (with the RAPL caveat when ``meter`` is RAPL).

    Example:
        >>> rec = loadtest_record(target="http://h/v1", config={}, server=None,
        ...                       meter={"source": "rapl"}, levels=[], notes=["n"], choice=1)
        >>> list(rec)[:5], list(rec)[-2:], rec["notes"][1]
        (['schema_version', 'kind', 'wattlm_version', 'created_utc', 'target'], ['choice', 'notes'], 'RAPL counts the whole CPU package, not only the server process')
    """
    from wattlm._version import __version__

    if meter is not None and meter.get("source") == "rapl":
        notes = [*notes, "RAPL counts the whole CPU package, not only the server process"]
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "loadtest",
        "wattlm_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "target": target,
        "config": config,
        "server": server,
        "meter": meter,
        "levels": levels,
        **sections,
        "notes": notes,
    }


def write_loadtest(record: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``loadtest.json`` and ``loadtest.md`` (a slot sweep's own report when the
    record has a ``sweep``) into ``out``; return both paths."""
    from wattlm._files import write_json, write_text
    from wattlm.serve.loadreport import render_markdown
    from wattlm.serve.sweepreport import render_sweep_markdown

    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "loadtest.json", out / "loadtest.md"
    write_json(json_path, record)
    render = render_sweep_markdown if "sweep" in record else render_markdown
    write_text(md_path, render(record))
    return json_path, md_path
