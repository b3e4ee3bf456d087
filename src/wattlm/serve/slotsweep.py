"""``wattlm loadtest --serve MODEL --slots 1,2,4,8 --rate R --slo-p99-ms N``: a slot sweep.

For each slot count, ``wattlm serve MODEL --slots S`` starts as a child process
(:class:`~wattlm.serve.child.ChildServer`: a free loopback port, a random API key), the
same seeded workload runs at rate R (:func:`~wattlm.serve.loadtest.run_loadtest`, with
wattlm's meter on the child's process id, as ``--server-pid`` does), and the child is
stopped (SIGTERM, wait) before the next one starts. The record is a loadtest record with
one level per slot count, a ``sweep`` section (:func:`~wattlm.serve.slotchoice.level_entry`)
and the ``choice`` (:func:`~wattlm.serve.slotchoice.choose_slots`) with its ready
``wattlm serve`` command.

Example:
    >>> cfg = SweepConfig(model="model.gguf", slots=(1, 2, 4), slo_p99_ms=2000.0, threads=2)
    >>> serve_command(cfg, 2)
    'wattlm serve model.gguf --slots 2 --threads 2'
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattlm._config import Config, check_int
from wattlm.errors import WattlmError
from wattlm.serve.child import ChildServer
from wattlm.serve.loadtest import LoadConfig, loadtest_record, run_loadtest
from wattlm.serve.slotchoice import LATENCY, choose_slots, level_entry

DEFAULT_SLOTS = (1, 2, 4, 8)
NOTES = (
    "each slot count ran on its own `wattlm serve` process, started fresh (empty prompt "
    "cache) and stopped before the next; every level sent the same seeded workload",
    "server J/request: the mean of the energy_j each answer's usage carried; meter "
    "J/request: wattlm's meter of the server process over the whole level (idle gaps "
    "included) divided by the answered requests",
    "95% intervals: the mean's over the level's requests (the meter's takes the server's "
    "relative width); they do not include run-to-run noise",
)


@dataclass(frozen=True)
class SweepConfig(Config):
    """The servers of a slot sweep and the latency objective.

    Attributes:
        model: what ``wattlm serve`` serves: a GGUF file, a model folder or an optimize run.
        slots: the slot counts to try, each once, in this order.
        slo_p99_ms: the p99 end-to-end latency limit in ms (``None``: no limit).
        threads: ``--threads`` of every server (``None``: the serve default or the run's).
        context_tokens: ``--context-tokens`` of every server (``None``: the serve default).
        meter: ``--meter`` of every server (the energy in each answer's ``usage``).
        start_timeout_s: how long a server may take to answer ``/health``.
    """

    model: str
    slots: tuple[int, ...] = DEFAULT_SLOTS
    slo_p99_ms: float | None = None
    threads: int | None = None
    context_tokens: int | None = None
    meter: str = "auto"
    start_timeout_s: float = 600.0

    config_name = "slot sweep config"

    def __post_init__(self) -> None:
        if not self.model:
            raise WattlmError("--serve needs a model", hint="a GGUF file, model folder or run")
        if not self.slots:
            raise WattlmError("--slots is empty", hint="give slot counts, e.g. 1,2,4,8")
        if any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in self.slots):
            raise WattlmError(
                f"--slots values must be integers >= 1, got {list(self.slots)}",
                hint="e.g. --slots 1,2,4,8",
            )
        if len(set(self.slots)) != len(self.slots):
            raise WattlmError(f"--slots repeats a value: {list(self.slots)}")
        if self.slo_p99_ms is not None and not self.slo_p99_ms > 0:
            raise WattlmError(f"--slo-p99-ms must be > 0, got {self.slo_p99_ms:g}")
        if self.threads is not None:
            check_int("threads", self.threads, 1)
        if self.context_tokens is not None:
            check_int("context_tokens", self.context_tokens, 16)
        if not self.start_timeout_s > 0:
            raise WattlmError(f"start_timeout_s must be > 0, got {self.start_timeout_s}")

    def serve_args(self, slots: int) -> list[str]:
        """The ``wattlm serve`` options of the server with ``slots`` slots."""
        args = ["--slots", str(slots)]
        if self.threads is not None:
            args += ["--threads", str(self.threads)]
        if self.context_tokens is not None:
            args += ["--context-tokens", str(self.context_tokens)]
        return args


def serve_command(cfg: SweepConfig, slots: int) -> str:
    """The ready ``wattlm serve`` command for ``slots`` slots."""
    return " ".join(shlex.quote(a) for a in ["wattlm", "serve", cfg.model, *cfg.serve_args(slots)])


def check_servable(cfg: SweepConfig) -> None:
    """Refuse, before any server starts, a model ``wattlm serve`` could not take."""
    from wattlm.serve.config import ServeConfig
    from wattlm.serve.recommendation import is_run_dir, read_recommendation

    fields: dict[str, Any] = {"model": cfg.model}
    if is_run_dir(cfg.model):
        fields.update(read_recommendation(Path(cfg.model)))
    elif cfg.model.endswith(".gguf") and not Path(cfg.model).is_file():
        raise WattlmError(f"GGUF file not found: {cfg.model}", hint="check the path")
    if cfg.threads is not None:
        fields["threads"] = cfg.threads
    if cfg.context_tokens is not None:
        fields["context_tokens"] = cfg.context_tokens
    ServeConfig(**{**fields, "slots": max(cfg.slots)})


def _one_level(
    cfg: SweepConfig, load: LoadConfig, text: str, slots: int, log_dir: Path
) -> dict[str, Any]:
    child = ChildServer(
        cfg.model,
        [*cfg.serve_args(slots), "--meter", cfg.meter],
        log_path=log_dir / f"serve-slots-{slots}.log",
        start_timeout_s=cfg.start_timeout_s,
    )
    url = child.start()
    try:
        level_cfg = dataclasses.replace(load, url=url, api_key=child.api_key, server_pid=child.pid)
        record = run_loadtest(level_cfg, text)
    finally:
        rc = child.stop()
    level = record["levels"][0]
    energies = [r["energy_j"] for r in level["requests"]
                if r["status"] == "ok" and r["energy_j"] is not None]  # fmt: skip
    return {
        **level,
        "slots": slots,
        "server": record["server"],
        "meter": record["meter"],
        "exit_code": rc,
        "entry": level_entry(slots, level["summary"], energies),
    }


def run_slot_sweep(
    cfg: SweepConfig,
    load: LoadConfig,
    text: str,
    *,
    log_dir: Path,
    on_level: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Serve and load each slot count of ``cfg`` in turn; return the loadtest record.

    ``load`` gives the workload (its ``url`` is replaced by each child's; it must have one
    rate); ``on_level`` gets each finished level's ``sweep`` entry. A later slot count whose
    server does not start is recorded with its error; the first one's failure is an error.
    """
    if len(load.rates) != 1:
        raise WattlmError(
            f"a slot sweep needs one --rate, got {list(load.rates) or 'none'}",
            hint="the latency objective holds at one arrival rate, e.g. --rate 2",
        )
    check_servable(cfg)
    levels: list[dict[str, Any]] = []
    for slots in cfg.slots:
        try:
            level = _one_level(cfg, load, text, slots, log_dir)
        except WattlmError as err:
            if not levels:
                raise
            level = {"rate": load.rates[0], "slots": slots, "start_error": str(err),
                     "entry": _failed_entry(slots, load.requests, str(err))}  # fmt: skip
        levels.append(level)
        if on_level is not None:
            on_level(level["entry"])
    entries = [lv.pop("entry") for lv in levels]
    choice = choose_slots(entries, cfg.slo_p99_ms)
    if choice["slots"] is not None:
        choice["command"] = serve_command(cfg, choice["slots"])
    config = {k: v for k, v in load.to_dict().items() if k not in ("url", "server_pid")}
    return loadtest_record(
        target=f"wattlm serve {cfg.model} (one child server per slot count)",
        config={**config, "sweep": cfg.to_dict()},
        server=next((lv["server"] for lv in levels if lv.get("server")), None),
        meter=next((lv["meter"] for lv in levels if lv.get("meter")), None),
        levels=levels,
        notes=list(NOTES),
        sweep={
            "rate": load.rates[0],
            "slo_p99_ms": cfg.slo_p99_ms,
            "latency": LATENCY,
            "levels": entries,
        },
        choice=choice,
    )


def _failed_entry(slots: int, requests: int, error: str) -> dict[str, Any]:
    return {
        "slots": slots, "requests": requests, "ok": 0, "lost": requests,
        "errors": {"server_start": 1}, "start_error": error, "e2e_latency_p50_ms": None,
        "e2e_latency_p95_ms": None, "e2e_latency_p99_ms": None, "ttft_p99_ms": None,
        "requests_per_s": None, "output_tokens_per_s": None, "server_j_per_request": None,
        "server_j_per_request_ci95": None, "meter_j_per_request": None,
        "meter_j_per_request_ci95": None,
    }  # fmt: skip
