"""Serving under load: SmolLM2 Q4_1 on llama.cpp and int4 torch, with and without a shared prefix.

Usage:
    python benchmarks/serving.py [--backends llamacpp,torch-int4] [--rates 0.5,1,2,4,8]
                                 [--requests 40] [--concurrency 16] [--slots 4] [--threads N]
                                 [--prefix-words 380] [--prompt-words 16..48]
                                 [--max-tokens 16..32] [--time-limit 300]
                                 [--out runs/benchmarks-serving]

For each backend a ``wattlm serve`` process is started on loopback; ``wattlm loadtest``'s
engine sends the same seeded Poisson workload at each arrival rate (light to saturating),
once with no shared prefix and once with every prompt after the same ``--prefix-words``
words (~500 tokens at the default, a shared system prompt); on llama.cpp the prefixed
workload runs a third time with the prompt cache off (``cache_prompt: false``), which is
what the cache saves. Printed as one Markdown table:
throughput, p99 latency, J/request from the server's own per-request attribution and from
a meter of the server process, and how many prompt tokens the prefix cache served. Every
level's loadtest.json and loadtest.md are saved under --out.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from wattlm.data.text import load_text
from wattlm.serve.loadtest import LoadConfig, run_loadtest, write_loadtest
from wattlm.serve.workload import parse_range


def _int4_model(out: Path) -> Path:
    """SmolLM2 with int4 weight-only linear layers (group 32), saved once under ``out``."""
    folder = out / "smollm2-int4"
    if (folder / "config.json").is_file():
        return folder
    from wattlm.compress.recipe import Recipe, apply_recipe
    from wattlm.models.load import load_model, save_model

    lm = load_model("smollm2-135m")
    stages = [{"method": "int4-weight", "group_size": 32}]
    lm.compression = apply_recipe(lm.model, Recipe.from_dict({"stages": stages}))
    save_model(lm, folder)
    return folder


def _start(model: str, backend: str, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    command = [
        sys.executable, "-m", "wattlm", "serve", model, "--backend", backend, "--port", "0",
        "--slots", str(args.slots), "--threads", str(args.threads), "--context-tokens", "1024",
        "--max-queue", "256",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # library warnings may come first
        found = re.search(r"serving .* at (http://\S+)/v1", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining
            return proc, found[1]
        seen.append(line)
    proc.kill()
    raise SystemExit("the server did not start:\n" + "".join(seen[-20:]))


def _row(backend: str, prefix: int, rate: float, s: dict) -> str:
    def g(v, fmt="{:.3g}"):
        return "–" if v is None else fmt.format(v)

    return (
        f"| {backend} | {prefix} | {rate:g} | {s['ok']}/{s['requests']} "
        f"| {g(s['requests_per_s'], '{:.2f}')} | {g(s['output_tokens_per_s'], '{:.1f}')} "
        f"| {g(s['latency']['p99_ms'], '{:.0f}')} | {g(s['ttft']['p99_ms'], '{:.0f}')} "
        f"| {g(s['server_energy_j_per_request'])} | {g(s['meter_energy_j_per_request'])} "
        f"| {s['cached_prompt_tokens']}/{s['prompt_tokens']} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="llamacpp,torch-int4")
    parser.add_argument("--rates", default="0.5,1,2,4,8")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--prefix-words", type=int, default=380)
    parser.add_argument("--prompt-words", default="16..48")
    parser.add_argument("--max-tokens", default="16..32")
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--meter", default="auto")
    parser.add_argument("--out", default="runs/benchmarks-serving")
    args = parser.parse_args()
    out = Path(args.out)
    rates = tuple(float(r) for r in args.rates.split(","))
    text = load_text("wiki-sample", "test")
    rows = []
    for backend in args.backends.split(","):
        if backend == "llamacpp":
            from wattlm.assets import asset_path

            model, engine = str(asset_path("smollm2-135m")), "llamacpp"
        elif backend == "torch-int4":
            model, engine = str(_int4_model(out)), "torch"
        else:
            raise SystemExit(f"unknown backend {backend!r}: llamacpp or torch-int4")
        proc, url = _start(model, engine, args)
        try:
            for prefix, cache in ((0, True), (args.prefix_words, True), (args.prefix_words, False)):
                if not cache and engine != "llamacpp":
                    continue  # transformers has no per-request switch for its block sharing
                cfg = LoadConfig(
                    url=url, requests=args.requests, concurrency=args.concurrency, rates=rates,
                    prompt_words=parse_range(args.prompt_words, "--prompt-words"),
                    max_tokens=parse_range(args.max_tokens, "--max-tokens"),
                    prefix_words=prefix, time_limit_s=args.time_limit, server_pid=proc.pid,
                    meter=args.meter, cache_prompt=cache,
                )  # fmt: skip
                record = run_loadtest(cfg, text)
                label = backend if cache else f"{backend}, cache off"
                write_loadtest(record, out / f"{backend}-prefix{prefix}-cache{int(cache)}")
                rows += [_row(label, prefix, lv["rate"], lv["summary"]) for lv in record["levels"]]
        finally:
            proc.terminate()
            proc.wait(120)
    source = record["levels"][0]["summary"]["server_energy_source"]
    print(
        f"\nServer energy source: {source}; meter: {record['levels'][0]['summary']['meter_source']}\n"
    )
    print(
        "| backend | prefix words | rate (req/s) | ok | req/s | out tok/s | p99 latency ms "
        "| p99 TTFT ms | J/request (server) | J/request (meter) | cached/prompt tokens |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
