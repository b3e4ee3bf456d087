"""The two training flows of issue 5 on the embedded defaults, end to end, with tables.

Flow 1 (``--flow 1``): MiniLM → fine-tuned sentiment teacher on the movie-review sentences →
distilled 3-layer student → int8 by QAT. One table: test accuracy, parameters, size,
samples/s and joules per 1,000 samples (classification of the test split, measured by
wattlm's meter) for the teacher, the student and the quantized student; checks that the
student keeps at least 95% of the teacher's accuracy.

Flow 2 (``--flow 2``): SmolLM2-135M with a third of its layers dropped (compress's
``drop-layers``, angular importance), healed by distillation from the full model on the
wiki sample's train split for a bounded time: perplexity of the teacher, the dropped
unhealed model and the healed one (test split, ``--ppl-tokens`` tokens).

Usage:
    python benchmarks/train_flows.py [--flow 1|2|all] [--out runs/train-flows]
        [--teacher-epochs 3] [--student-epochs 3] [--qat-epochs 1] [--heal-minutes 20]
        [--precision fp32|bf16] [--threads N] [--quick]

``--quick`` runs every stage for 2 steps on small slices (a smoke test, minutes); the
figures it prints mean nothing. Every stage writes its own run folder (result.json,
config.json, log.jsonl, model/) under ``--out``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from wattlm.data.labelled import load_labelled
from wattlm.measure.factory import make_meter
from wattlm.models.fingerprint import parameter_count, weight_bytes
from wattlm.models.load import load_model
from wattlm.train import (
    DataConfig,
    DistillConfig,
    FinetuneConfig,
    QatConfig,
    TrainOptions,
    distill,
    finetune,
    qat,
)
from wattlm.training.data import spread
from wattlm.training.evaluate import classify_energy


def _options(args: argparse.Namespace, epochs: int, lr: float, **kw: Any) -> TrainOptions:
    base = {
        "lr": lr,
        "epochs": epochs,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "threads": args.threads,
        "warmup_steps": 0 if args.quick else 20,
        "log_every": 1 if args.quick else 20,
        "max_steps": 2 if args.quick else None,
    }
    return TrainOptions(**{**base, **kw})


def _row(name: str, folder: Path, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import json

    result = json.loads((folder / "result.json").read_text())
    lm = load_model(str(folder / "model"), task="sequence-classification")
    meter = make_meter(args.meter)
    speed = classify_energy(lm, texts, meter=meter, batch_size=32, max_length=args.seq_len)
    return {
        "model": name,
        "accuracy": result["quality"]["after"]["value"],
        "parameters": parameter_count(lm.model),  # int8 weights counted too
        "size_mb": weight_bytes(lm.model) / 1e6,
        "samples_per_s": speed["samples_per_s"],
        "j_per_1000": speed["joules_per_1000_samples"],
        "source": speed["energy_source"],
        "train_j": result["training"]["energy_j"],
        "train_s": result["training"]["time_s"],
    }


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def flow_sentiment(args: argparse.Namespace, out: Path) -> bool:
    """Flow 1; returns whether the student kept >= 95% of the teacher's accuracy."""
    n = 64 if args.quick else None
    data = DataConfig(
        "movie-sentiment", seq_len=args.seq_len, max_train_samples=n, eval_max_samples=n
    )
    teacher = out / "minilm-teacher"
    finetune(
        FinetuneConfig(
            model="minilm-l6", data=data, options=_options(args, args.teacher_epochs, 1e-4)
        ),
        teacher,
    )
    student = out / "minilm-student-3l"
    distill(
        DistillConfig(
            teacher=str(teacher / "model"),
            student="layers:3",
            data=data,
            options=_options(args, args.student_epochs, 2e-4),
            temperature=2.0,
            alpha=0.5,
        ),
        student,
    )
    quantized = out / "minilm-student-3l-int8"
    qat(
        QatConfig(
            model=str(student / "model"),
            data=data,
            options=_options(args, args.qat_epochs, 2e-5),
            scheme="int8",
        ),
        quantized,
    )
    texts = [t for t, _ in spread(load_labelled("movie-sentiment", "test"), n)]
    rows = [
        _row("teacher (MiniLM-L6, 6 layers)", teacher, texts, args),
        _row("student (3 layers, distilled)", student, texts, args),
        _row("student int8 (QAT)", quantized, texts, args),
    ]
    print("\n### Flow 1: MiniLM sentiment teacher → 3-layer student → int8\n")
    print(
        "| model | test accuracy | parameters | size MB | samples/s | J / 1,000 samples "
        "| energy source | training J | training s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['accuracy']:.4f} | {r['parameters']:,} | {r['size_mb']:.1f} "
            f"| {_num(r['samples_per_s'], '.1f')} | {_num(r['j_per_1000'], '.1f')} | {r['source']} "
            f"| {_num(r['train_j'], '.0f')} | {r['train_s']:.0f} |"
        )
    kept = rows[1]["accuracy"] / rows[0]["accuracy"] if rows[0]["accuracy"] else 0.0
    ok = kept >= 0.95
    print(
        f"\nstudent keeps {kept:.1%} of the teacher's accuracy "
        f"({'meets' if ok else 'MISSES'} the 95% bar); int8 student keeps "
        f"{rows[2]['accuracy'] / rows[0]['accuracy']:.1%}"
    )
    return ok


def flow_heal(args: argparse.Namespace, out: Path) -> bool:
    """Flow 2; returns whether the healed model beats the unhealed one."""
    data = DataConfig(
        "wiki-sample",
        seq_len=64 if args.quick else args.lm_seq_len,
        max_train_samples=16 if args.quick else None,
        eval_max_tokens=512 if args.quick else args.ppl_tokens,
        eval_max_length=512,
    )
    options = _options(
        args,
        1,
        args.heal_lr,
        batch_size=2 if args.quick else args.lm_batch_size,
        max_time_s=None if args.quick else args.heal_minutes * 60,
        schedule="constant",
        warmup_steps=0 if args.quick else 10,
        log_every=1 if args.quick else 5,
    )
    healed = out / "smollm2-drop33-healed"
    started = time.perf_counter()
    result = distill(
        DistillConfig(
            teacher="smollm2-135m",
            student="drop-layers:0.33",
            data=data,
            options=options,
            temperature=args.heal_temperature,
            alpha=args.heal_alpha,
        ),
        healed,
    )
    wall = time.perf_counter() - started
    q, t, s = result["quality"], result["training"], result["student"]
    print("\n### Flow 2: SmolLM2-135M, a third of its layers dropped, healed by distillation\n")
    print(f"perplexity on {q['after']['tokens']} test tokens of wiki-sample "
          f"(window {q['after']['max_length']}, stride {q['after']['stride']})\n")  # fmt: skip
    print("| model | layers | parameters | perplexity |")
    print("|---|---|---|---|")
    n_layers = len(s["layer_map"])
    teacher_layers = n_layers + len(s["drop_layers"]["removed_layers"])
    print(
        f"| teacher | {teacher_layers} | {s['teacher_parameters']:,} | {q['teacher']['value']:.2f} |"
    )
    print(f"| dropped, unhealed | {n_layers} | {s['parameters']:,} | {q['before']['value']:.2f} |")
    print(f"| dropped, healed | {n_layers} | {s['parameters']:,} | {q['after']['value']:.2f} |")
    energy = "n/a" if t["energy_j"] is None else f"{t['energy_j']:.0f} J ({t['g_co2e']:.3f} gCO2e)"
    print(
        f"\nhealing: {t['steps']} steps ({t['stopped_by']}), {t['tokens']:,} tokens in "
        f"{t['time_s'] / 60:.1f} min, {energy}, source {t['energy_source']}; removed layers "
        f"{s['drop_layers']['removed_layers']}; whole flow {wall / 60:.1f} min"
    )
    better = q["after"]["value"] < q["before"]["value"]
    gain = 1 - q["after"]["value"] / q["before"]["value"]
    print(
        f"healed is {'better' if better else 'NOT better'} than unhealed ({gain:+.1%} perplexity)"
    )
    return better


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", choices=("1", "2", "all"), default="all")
    parser.add_argument("--out", default="runs/train-flows")
    parser.add_argument("--quick", action="store_true", help="2 steps per stage: a smoke test")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--meter", default="auto")
    parser.add_argument("--batch-size", type=int, default=32, help="flow 1 batch size")
    parser.add_argument("--seq-len", type=int, default=128, help="flow 1 sentence cut")
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--student-epochs", type=int, default=3)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--heal-minutes", type=float, default=20.0)
    parser.add_argument("--heal-lr", type=float, default=1e-4)
    parser.add_argument("--heal-temperature", type=float, default=2.0)
    parser.add_argument("--heal-alpha", type=float, default=0.5)
    parser.add_argument("--lm-batch-size", type=int, default=4)
    parser.add_argument("--lm-seq-len", type=int, default=256)
    parser.add_argument("--ppl-tokens", type=int, default=4096)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        parser.error(f"{out} exists and is not empty: pass a new --out")
    if args.threads:
        torch.set_num_threads(args.threads)
    print("reproduce: python " + " ".join(shlex.quote(a) for a in sys.argv), flush=True)
    ok = True
    if args.flow in ("1", "all"):
        ok &= flow_sentiment(args, out)
    if args.flow in ("2", "all"):
        ok &= flow_heal(args, out)
    print("\nreproduce: python " + " ".join(shlex.quote(a) for a in sys.argv))
    if args.quick:
        print("(--quick: 2 steps per stage on small slices; these figures mean nothing)")
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
