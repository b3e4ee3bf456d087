"""fp32 vs bf16 torch vs llama.cpp on the embedded default model, batch 1 and 8.

Usage:
    python benchmarks/backends.py [--model smollm2-135m] [--batch 1,8] [--repeats 5]
                                  [--threads N] [--out runs/benchmarks-backends]

Loads the model once per precision, runs the standard bench protocol (same prompts, same
threads; see docs/measurement.md) and prints one Markdown table. Each variant's full
result.json and config.json are saved under --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wattlm.bench.config import BenchConfig
from wattlm.bench.runner import bench
from wattlm.models.load import load_model


def _fmt(stat: dict | None, digits: int = 1) -> str:
    if stat is None:
        return "n/a"
    flag = " ⚠" if stat["noisy"] else ""
    return f"{stat['median']:.{digits}f}{flag}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/benchmarks-backends")
    args = parser.parse_args()
    batches = tuple(int(b) for b in args.batch.split(","))
    common = dict(model=args.model, batch_sizes=batches, repeats=args.repeats, threads=args.threads)
    variants = [
        ("fp32", "float32", ("torch", "llamacpp")),
        ("bf16", "bfloat16", ("torch",)),
    ]
    rows = []
    for label, dtype, backends in variants:
        cfg = BenchConfig(dtype=dtype, backends=backends, **common)
        lm = load_model(args.model, dtype=dtype)
        result = bench(cfg, model=lm, out_dir=Path(args.out) / label)
        ppl = result["quality"]["value"]
        for run in result["runs"]:
            name = f"torch {dtype}" if run["backend"] == "torch" else f"llama.cpp ({run['dtype']})"
            rows.append(
                (
                    name,
                    run["batch_size"],
                    f"{ppl:.2f}" if run["backend"] == "torch" else "(torch ppl)",
                    f"{result['model']['weight_bytes'] / 1e6:.0f}"
                    if run["backend"] == "torch"
                    else f"{result['model']['disk_bytes'] / 1e6:.0f} (file)",
                    _fmt(run["prefill"]["tokens_per_s"], 0),
                    _fmt(run["decode"]["tokens_per_s"]),
                    _fmt(run["prefill"]["energy_j_per_token"], 4),
                    _fmt(run["decode"]["energy_j_per_token"], 3),
                    run["energy_source"],
                )
            )
    head = (
        "variant",
        "batch",
        "perplexity",
        "weights MB",
        "prefill tok/s",
        "decode tok/s",
        "prefill J/tok",
        "decode J/tok",
        "energy source",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print(
        f"\nthreads: {cfg.resolved_threads}; median of {args.repeats} repeats; ⚠ = noisy (CV > 10%)"
    )


if __name__ == "__main__":
    main()
