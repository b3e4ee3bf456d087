"""What each training efficiency option costs and saves on this machine, one table.

MiniLM-L6 (22.7M parameters) fine-tuned as a sentiment classifier on the movie-review
sentences, a few steps per variant: fp32 AdamW (the baseline), bf16 autocast, gradient
checkpointing, gradient accumulation (4 × 4 instead of 16 × 1: the same global batch),
SGD with momentum, Adafactor, and ``torch.compile``.

Each variant runs ``wattlm train finetune`` in its own process, so peak memory is that
variant's own and compiled code cannot leak into the next one. Figures are medians over the
steps after ``--warmup`` (which absorb first-call and compile costs): seconds per optimizer
step, samples per second, joules per step with their source (from the run's ``log.jsonl``),
and peak resident memory of the process, plus how much it grew during training (activations,
gradients, optimizer state).

Usage:
    python benchmarks/train_options.py [--steps 8] [--warmup 2] [--batch-size 16]
        [--threads N] [--skip compile] [--only baseline,bf16] [--out runs/train-options]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: name -> extra CLI flags (the baseline is fp32, AdamW, no accumulation or checkpointing)
VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "bf16": ["--precision", "bf16"],
    "checkpointing": ["--gradient-checkpointing"],
    "grad-accum": ["--grad-accum", "4"],
    "sgd": ["--optimizer", "sgd", "--lr", "1e-2"],
    "adafactor": ["--optimizer", "adafactor", "--lr", "1e-3"],
    "compile": ["--compile"],
}
LABELS = {
    "baseline": "fp32, AdamW (baseline)",
    "bf16": "bf16 autocast",
    "checkpointing": "gradient checkpointing",
    "grad-accum": "grad accumulation 4 × batch/4",
    "sgd": "SGD + momentum",
    "adafactor": "Adafactor",
    "compile": "torch.compile",
}


def _run(name: str, args: argparse.Namespace, out: Path) -> dict:
    batch = args.batch_size // 4 if name == "grad-accum" else args.batch_size
    cmd = [
        sys.executable, "-m", "wattlm", "train", "finetune",
        "--model", args.model, "--data", "movie-sentiment",
        "--max-steps", str(args.steps), "--batch-size", str(batch), "--seq-len", str(args.seq_len),
        "--eval-max-samples", "32", "--log-every", str(args.steps), "--meter", args.meter,
        "--schedule", "constant", "--out", str(out / name), *VARIANTS[name],
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"name": name, "error": tail[0], "wall_s": time.perf_counter() - started}
    records = [json.loads(x) for x in (out / name / "log.jsonl").read_text().splitlines()]
    measured = records[args.warmup :] or records
    result = json.loads((out / name / "result.json").read_text())
    energies = [r["energy_j"] for r in measured if r["energy_j"] is not None]
    return {
        "name": name,
        "step_s": statistics.median(r["time_s"] for r in measured),
        "samples_per_s": statistics.median(r["samples_per_s"] for r in measured),
        "j_per_step": statistics.median(energies) if energies else None,
        "source": measured[0]["energy_source"],
        "peak_rss_mb": result["memory"]["peak_rss_bytes"] / 1e6,
        "growth_mb": (result["memory"]["peak_rss_bytes"] - result["memory"]["start_rss_bytes"])
        / 1e6,
        "loss_last": result["training"]["loss_last"],
        "wall_s": time.perf_counter() - started,
        "command": " ".join(shlex.quote(c) for c in cmd),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of medians")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--meter", default="auto")
    parser.add_argument("--only", default="", help="comma list of variants to run")
    parser.add_argument("--skip", default="", help="comma list of variants to leave out")
    parser.add_argument("--out", default="runs/train-options")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(VARIANTS)
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    unknown = [n for n in [*names, *skip] if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        parser.error(f"{out} exists and is not empty: pass a new --out")
    print("reproduce: python " + " ".join(shlex.quote(a) for a in sys.argv), flush=True)
    rows = []
    for name in (n for n in names if n not in skip):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.append(_run(name, args, out))
    base = next((r for r in rows if r["name"] == "baseline" and "error" not in r), None)
    print(
        f"\n### Training options on {args.model} (sentiment classification, global batch "
        f"{args.batch_size}, sentences cut at {args.seq_len} tokens; medians of steps "
        f"{args.warmup + 1}-{args.steps})\n"
    )
    print("| option | s / step | samples/s | J / step | energy source | peak RSS MB | growth in training MB | vs baseline time | vs baseline energy |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {LABELS[r['name']]} | failed: {r['error']} | | | | | | | |")
            continue
        t_rel = f"{r['step_s'] / base['step_s']:.2f}×" if base else "n/a"
        e_rel = "n/a"
        if base and r["j_per_step"] is not None and base["j_per_step"]:
            e_rel = f"{r['j_per_step'] / base['j_per_step']:.2f}×"
        j = "n/a" if r["j_per_step"] is None else f"{r['j_per_step']:.2f}"
        print(
            f"| {LABELS[r['name']]} | {r['step_s']:.3f} | {r['samples_per_s']:.1f} | {j} "
            f"| {r['source']} | {r['peak_rss_mb']:.0f} | {r['growth_mb']:.0f} | {t_rel} | {e_rel} |"
        )
    total = sum(r["wall_s"] for r in rows)
    print(f"\n{len(rows)} variants in {total / 60:.1f} min; each run folder is under {out}/")
    print("reproduce: python " + " ".join(shlex.quote(a) for a in sys.argv))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
