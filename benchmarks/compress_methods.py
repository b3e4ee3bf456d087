"""Every compression method at a sensible default on the embedded SmolLM2, one table.

Usage:
    python benchmarks/compress_methods.py [--batch 1,8] [--repeats 3] [--ppl-tokens 4096]
                                          [--only int4-weight,wanda] [--out runs/bench-methods]

The model is loaded once; each variant is a deep copy compressed in memory by its recipe,
then measured by the standard bench protocol (torch backend, same prompts and threads;
perplexity on the test split). The llama.cpp row runs the original Q4_1 file. Each
variant's result.json is saved under --out.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from pathlib import Path

from wattlm.bench.config import BenchConfig
from wattlm.bench.runner import bench
from wattlm.compress.recipe import Recipe, apply_recipe
from wattlm.models.load import LoadedModel, load_model

VARIANTS: list[tuple[str, list[dict]]] = [
    ("fp32 (baseline)", []),
    ("bf16", [{"method": "cast", "dtype": "bfloat16"}]),
    ("int8 weight-only", [{"method": "int8-weight"}]),
    ("int4 weight-only g32", [{"method": "int4-weight", "group_size": 32}]),
    ("int8 dynamic act+weight", [{"method": "int8-dynamic"}]),
    (
        "GPTQ int4 g32",
        [{"method": "gptq", "group_size": 32}, {"method": "int4-weight", "group_size": 32}],
    ),
    ("magnitude 30% (global)", [{"method": "magnitude-prune", "sparsity": 0.3}]),
    ("2:4 magnitude", [{"method": "nm-sparsity", "n": 2, "m": 4}]),
    ("2:4 Wanda", [{"method": "nm-sparsity", "n": 2, "m": 4, "criterion": "wanda"}]),
    ("Wanda 50%", [{"method": "wanda", "sparsity": 0.5}]),
    ("prune FFN 25% (activation)", [{"method": "prune-ffn", "ratio": 0.25}]),
    ("prune 1/3 KV groups (activation)", [{"method": "prune-heads", "ratio": 1 / 3}]),
    ("drop 1/3 layers (angular)", [{"method": "drop-layers", "ratio": 1 / 3}]),
    ("low-rank 0.5 (MLP)", [{"method": "lowrank", "rank_ratio": 0.5}]),
    ("fp32 on ONNX Runtime", []),
]
#: variants measured on another backend than torch (the model is exported by bench itself)
BACKEND = {"fp32 on ONNX Runtime": "onnxruntime"}


def _fmt(run: dict, phase: str, key: str, digits: int) -> str:
    stat = run[phase][key]
    return (
        "n/a" if stat is None else f"{stat['median']:.{digits}f}" + (" ⚠" if stat["noisy"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ppl-tokens", type=int, default=4096)
    parser.add_argument("--only", default="", help="comma list of method names to run")
    parser.add_argument("--no-llamacpp", action="store_true")
    parser.add_argument("--out", default="runs/bench-methods")
    args = parser.parse_args()
    batches = tuple(int(b) for b in args.batch.split(","))
    cfg = BenchConfig(
        backends=("torch",),
        batch_sizes=batches,
        repeats=args.repeats,
        ppl_max_tokens=args.ppl_tokens,
    )
    base = load_model("smollm2-135m")
    only = {m for m in args.only.split(",") if m}
    head = ["variant", "perplexity", "weight MB", "params M"]
    head += [f"decode tok/s b{b}" for b in batches] + [f"decode J/tok b{b}" for b in batches]
    head += ["compress s", "energy source"]
    rows = []
    for label, stages in VARIANTS:
        backend = BACKEND.get(label, "torch")
        if (
            only
            and (stages or backend != "torch")
            and not only
            & {
                *(s["method"] for s in stages),
                backend,
            }
        ):
            continue
        lm = LoadedModel(
            copy.deepcopy(base.model), base.tokenizer, f"smollm2-135m:{label}", None, "memory"
        )
        t0 = time.perf_counter()
        try:
            if stages:
                apply_recipe(lm.model, Recipe.from_dict({"stages": stages}), tokenizer=lm.tokenizer)
            took = time.perf_counter() - t0
            result = bench(
                dataclasses.replace(cfg, backends=(backend,)),
                model=lm,
                out_dir=Path(args.out) / label.replace(" ", "_").replace("/", "-"),
                progress=False,
            )
        except Exception as err:  # one broken method must not hide the others
            rows.append([label, f"error: {str(err).splitlines()[0][:60]}"] + [""] * (len(head) - 2))
            continue
        runs = result["runs"]
        rows.append(
            [
                label,
                f"{result['quality']['value']:.2f}",
                f"{result['model']['weight_bytes'] / 1e6:.0f}",
                f"{result['model']['parameters'] / 1e6:.1f}",
                *[_fmt(r, "decode", "tokens_per_s", 1) for r in runs],
                *[_fmt(r, "decode", "energy_j_per_token", 3) for r in runs],
                f"{took:.0f}",
                runs[0]["energy_source"],
            ]
        )
        del lm
    if not args.no_llamacpp:
        result = bench(
            BenchConfig(
                backends=("llamacpp",), batch_sizes=batches, repeats=args.repeats, quality=False
            ),
            model=base,
            progress=False,
        )
        runs = result["runs"]
        rows.append(
            [
                "llama.cpp Q4_1 file (peer)",
                "(same weights)",
                f"{result['model']['disk_bytes'] / 1e6:.0f} (file)",
                "134.5",
                *[_fmt(r, "decode", "tokens_per_s", 1) for r in runs],
                *[_fmt(r, "decode", "energy_j_per_token", 3) for r in runs],
                "-",
                runs[0]["energy_source"],
            ]
        )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\n{cfg.resolved_threads} threads; median of {args.repeats} repeats; prompt "
        f"{cfg.prompt_tokens}, {cfg.new_tokens} new tokens; perplexity on {args.ppl_tokens} test tokens"
    )


if __name__ == "__main__":
    main()
