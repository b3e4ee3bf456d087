"""Energy per decoded token under estimate v1, v2-total and v2-marginal, from the same
measured windows; perplexity from torch on the dequantized weights vs llama.cpp's own.

For each thread count, one ``bench`` run measures float32 torch and llama.cpp on the
model's own GGUF at each batch size with the default meter (``estimate:cpu-v2``). Every
window records its wall time, CPU time and resident memory, so the v1 figure
(``estimate:cpu-tdp-v1``: CPU time x per-core active power + DRAM) is recomputed from the
very same windows: the three columns differ only by the estimator, never by the run.

Perplexity on the test split comes from the first run's result: torch on the dequantized
GGUF weights (``quality``) and llama.cpp scoring the GGUF itself (``runtime_quality``: its
hidden states x the output matrix; see ``wattlm.bench.backends.llamacpp_logprobs``), same
tokens, same windows.

Run it alone on the machine (a parallel job falsifies the figures):

    python benchmarks/energy_views.py                       # SmolLM2, threads 1 and 2, batch 1 and 8
    python benchmarks/energy_views.py --threads 2 --batch 1 --repeats 3   # shorter
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from wattlm.bench.config import BenchConfig
from wattlm.bench.runner import bench
from wattlm.measure.estimate import CpuEstimateMeter


def _v1_j_per_token(run: dict, tokens: int, meter: CpuEstimateMeter) -> float:
    """Median over the run's decode windows of the v1 estimate, per decoded token."""
    per_token = []
    for w in run["samples"]["decode"]:
        rss = int((w.get("details") or {}).get("rss_bytes", 0))
        meter._rss_bytes = lambda rss=rss: rss
        v1 = meter._energy_between(None, None, w["time_s"], w["cpu_time_s"])
        per_token.append(v1.total_j / tokens)
    return statistics.median(per_token)


def _row(run: dict, v1_meter: CpuEstimateMeter) -> str:
    tokens = run["batch_size"] * (run["new_tokens"] - 1)
    total = run["decode"]["energy_j_per_token"]
    marginal = run["decode"]["energy_marginal_j_per_token"]
    band = (
        f"[{total.get('band_low', float('nan')):.4f}, {total.get('band_high', float('nan')):.4f}]"
    )
    return (
        f"| {run['backend']} | {run['threads']} | {run['batch_size']} "
        f"| {run['decode']['tokens_per_s']['median']:.1f} "
        f"| {_v1_j_per_token(run, tokens, v1_meter):.4f} "
        f"| {total['median']:.4f} [{total['ci95_low']:.4f}, {total['ci95_high']:.4f}] | {band} "
        f"| {marginal['median']:.4f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", default="1,2", help="comma list of thread counts")
    ap.add_argument("--batch", default="1,8", help="comma list of batch sizes")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ppl-tokens", type=int, default=2048)
    ap.add_argument("--out", type=Path, default=Path("runs/energy-views"))
    args = ap.parse_args()
    batches = tuple(int(b) for b in args.batch.split(","))
    threads = [int(t) for t in args.threads.split(",")]

    start = time.perf_counter()
    v1_meter = CpuEstimateMeter()
    rows, quality = [], None
    for t in threads:
        cfg = BenchConfig(
            model=args.model,
            backends=("torch", "llamacpp"),
            batch_sizes=batches,
            threads=t,
            repeats=args.repeats,
            meter="estimate",
            quality=quality is None,  # once: perplexity does not depend on threads
            ppl_max_tokens=args.ppl_tokens + 1,
        )
        result = bench(cfg, out_dir=args.out / f"threads-{t}")
        source = result["runs"][0]["energy_source"]
        rows += [_row(run, v1_meter) for run in result["runs"]]
        if quality is None:
            quality = (result["quality"], result["runtime_quality"]["llamacpp"])
    torch_q, cpp_q = quality
    torch_ppl, cpp_ppl, scored = torch_q["value"], cpp_q["value"], torch_q["tokens"]

    print(f"\n{args.model}: decode energy per token (J), energy source {source}; v1 recomputed")
    print("from the same windows. Total: median [95% CI] and the estimate's band.\n")
    print(
        "| backend | threads | batch | decode tok/s | v1 J/tok | v2 total J/tok | v2 band | v2 marginal J/tok |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nPerplexity on {scored} test tokens (window 512, stride 256):")
    print(f"  torch on the dequantized GGUF weights: {torch_ppl:.3f}")
    print(
        f"  llama.cpp on the GGUF itself:          {cpp_ppl:.3f}  ({(cpp_ppl / torch_ppl - 1) * 100:+.2f}%)"
    )
    print(f"\n{time.perf_counter() - start:.0f} s in all; results under {args.out}/")


if __name__ == "__main__":
    main()
