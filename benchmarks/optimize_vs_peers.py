"""The default ``wattlm optimize`` against the runtimes' own defaults, in one run.

1. Runs ``wattlm optimize`` with its defaults (the command a new user types) into
   ``OUT/optimize``. The search itself measures llama.cpp's default (the model's own GGUF
   file, as is) at batch 1 and at the recommendation's batch size.
2. Right after, in the same run, measures the other runtimes' defaults on the same model
   at the recommendation's batch size, with the search's full-stage settings (the same
   prompts, repeats, perplexity tokens and energy meter), each where its extra is
   installed:

   - ONNX Runtime GenAI's model builder as its CPU examples run it: int4 ``MatMulNBits``,
     block 32, accuracy level 4 (``int4-b32-acc4``);
   - ONNX Runtime on the float32 export;
   - OpenVINO on the float32 model (optimum-intel's export default for a model under one
     billion parameters), with the CPU plugin's default inference precision;
   - OpenVINO with NNCF's default weight compression (int8, asymmetric, per channel).

   Each is scored on its own logits (perplexity on the same test tokens as the search's
   full stage, KL divergence and top-1 agreement against the search's reference).
3. Prints one table: tokens per joule (the search's energy view, ``total`` by default),
   decode J/token with its 95% interval, perplexity and its increase over the baseline,
   KL, top-1, whether the configuration holds the perplexity budget, and the
   recommendation's ratio to each; then the headline: the ratio to the best peer at the
   same batch size (and to the best peer within the budget). Also ``OUT/peers.json``.

Usage:
    python benchmarks/optimize_vs_peers.py [--out runs/optimize-vs-peers] [--reuse]
        [-- extra wattlm optimize options]

``--reuse`` skips the search when ``OUT/optimize/optimize.json`` exists (the peers are
measured again). The figures compare configurations measured in the same run on the same
machine; energy without a sensor is an estimate and labelled so. Run it alone on the
machine: other work falsifies the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

#: the other runtimes' defaults measured beside the search: (label, backend, config fields)
PEERS = (
    (
        "ONNX Runtime GenAI builder default (int4, block 32, accuracy level 4)",
        "onnxruntime",
        {"onnx_weights": "int4-b32-acc4"},
    ),
    ("ONNX Runtime, float32 export", "onnxruntime", {"onnx_weights": "fp32"}),
    ("OpenVINO, float32 weights, CPU plugin defaults", "openvino", {"openvino_weights": "fp32"}),
    (
        "OpenVINO, NNCF default weight compression (int8, asymmetric)",
        "openvino",
        {"openvino_weights": "int8-asym"},
    ),
)


def run_search(out: Path, extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "wattlm", "optimize", "--out", str(out), *extra]
    print("$ " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads((out / "optimize.json").read_text(encoding="utf-8"))


def measure_peer(
    record: dict[str, Any], backend: str, fields: dict[str, str], out: Path
) -> dict[str, Any]:
    """One runtime's default at the recommendation's batch size: the search's metrics."""
    from wattlm.bench.config import BenchConfig
    from wattlm.bench.phases import StopRule, stopping
    from wattlm.bench.runner import bench, write_run
    from wattlm.models.fingerprint import state_dict_sha256
    from wattlm.models.load import load_model
    from wattlm.search.metrics import metrics_from_result
    from wattlm.search.reference import load_cached, reference_key, reference_path

    cfg = record["config"]
    full = cfg["full"]
    rec = _recommended(record)
    threads = (record.get("peer") or {}).get("threads") or rec["threads"]
    loaded = load_model(cfg["model"], device=cfg["device"])
    key = reference_key(state_dict_sha256(loaded.model), cfg["data"], cfg["device"])
    reference = load_cached(reference_path(key)) if reference_path(key).is_file() else None
    bench_cfg = BenchConfig(
        model=cfg["model"],
        data=cfg["data"],
        backends=(backend,),
        batch_sizes=(rec["batch_size"],),
        prompt_tokens=full["prompt_tokens"],
        new_tokens=full["new_tokens"],
        warmup=full["warmup"],
        repeats=full["repeats"],
        threads=threads,
        meter=cfg["meter"],
        device=cfg["device"],
        ppl_max_length=cfg["ppl_max_length"],
        ppl_stride=cfg["ppl_stride"],
        ppl_max_tokens=full["ppl_max_tokens"],
        **fields,
    )
    rule = None
    if full.get("rel_width") is not None:  # the full stage's adaptive repeats
        rule = StopRule(
            rel_width=full["rel_width"], min_repeats=full["min_repeats"], view=cfg["energy_view"]
        )
    with stopping(rule):
        result = bench(bench_cfg, model=loaded, progress=False, reference=reference)
    write_run(out, bench_cfg.to_dict(), result)
    export = result["runs"][0]["backend_details"].get("export") or {}
    return {
        "metrics": metrics_from_result(
            result,
            objective=cfg["objective"],
            weight_bytes=export.get("disk_bytes"),
            energy_view=cfg["energy_view"],
        ),
        "batch_size": rec["batch_size"],
        "threads": bench_cfg.resolved_threads,
        "energy_source": result["energy"]["source"],
        "result_path": str(out / "result.json"),
    }


def _recommended(record: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in record["trials"] if t["number"] == record["recommended"])


def rows(record: dict[str, Any], others: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The table's rows: the recommendation, then the peers at its batch size."""
    rec = _recommended(record)
    out = [{"label": f"recommended: {rec['label']}", **_row(record, rec), "peer": False}]
    same = record.get("peer_same_batch")
    if same is not None:
        out.append({"label": same["label"], **_row(record, same), "peer": True})
    for label, peer in others:
        out.append({"label": f"{label} · batch {peer['batch_size']}", **_row(record, peer),
                    "peer": True})  # fmt: skip
    return out


def _row(record: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    m = rec["metrics"]
    energy = m.get("objective")
    base = record["budget"]["baseline"]
    ppl = m.get("perplexity")
    increase = ppl / base - 1.0 if ppl is not None else None
    return {
        "j_per_token": energy["median"] if energy else None,
        "ci95": energy.get("ci95") if energy else None,
        "perplexity": ppl,
        "increase": increase,
        "kl_mean": m.get("kl_mean"),
        "top1": m.get("top1_agreement"),
        "within_budget": increase is not None and increase <= record["budget"]["max_increase"],
        "energy_source": rec.get("energy_source"),
        # the llama.cpp peer runs the file the baseline was loaded from: its quality is the
        # baseline's figure (torch on the same weights, dequantized), not its own
        # (a search trial's notes are its screen's: they say nothing of its full stage)
        "quality_reused": rec.get("number") is None
        and any("reused" in n for n in rec.get("notes") or []),
    }


def headline(table: list[dict[str, Any]]) -> dict[str, Any]:
    """The recommendation's tokens-per-joule ratio to the best peer, and to the best peer
    within the budget (``None`` where there is none).

    Example:
        >>> t = [{"peer": False, "j_per_token": 0.05, "within_budget": True},
        ...      {"peer": True, "j_per_token": 0.06, "within_budget": True, "label": "a"},
        ...      {"peer": True, "j_per_token": 0.04, "within_budget": False, "label": "b"}]
        >>> h = headline(t)
        >>> round(h["vs_best_peer"], 2), h["best_peer"], round(h["vs_best_peer_in_budget"], 2)
        (0.8, 'b', 1.2)
    """
    mine = next(r for r in table if not r["peer"])["j_per_token"]
    peers = [r for r in table if r["peer"] and r["j_per_token"]]
    kept = [r for r in peers if r["within_budget"]]
    best = min(peers, key=lambda r: r["j_per_token"], default=None)
    best_kept = min(kept, key=lambda r: r["j_per_token"], default=None)
    return {
        "best_peer": best["label"] if best else None,
        "vs_best_peer": best["j_per_token"] / mine if best and mine else None,
        "best_peer_in_budget": best_kept["label"] if best_kept else None,
        "vs_best_peer_in_budget": best_kept["j_per_token"] / mine if best_kept and mine else None,
    }


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def print_table(record: dict[str, Any], table: list[dict[str, Any]]) -> None:
    mine = table[0]["j_per_token"]
    view = record["config"]["energy_view"]
    print(f"\n| configuration | tokens/J ({view}) | J/token [95%] | perplexity | KL (nats) "
          "| top-1 | within budget | recommendation's ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        e = r["j_per_token"]
        ci = r["ci95"]
        interval = f"{_num(e, '.4f')} [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else _num(e, ".4f")
        ppl = f"{_num(r['perplexity'], '.2f')} ({_num(r['increase'], '+.1%')})"
        ppl += " *" if r.get("quality_reused") else ""
        ratio = f"{e / mine:.2f}×" if e and mine and r["peer"] else "—"
        print(f"| {r['label']} | {_num(1 / e if e else None, '.1f')} | {interval} | {ppl} "
              f"| {_num(r['kl_mean'], '.4f')} | {_num(r['top1'], '.3f')} "
              f"| {'yes' if r['within_budget'] else 'no'} | {ratio} |")  # fmt: skip
    if any(r.get("quality_reused") for r in table):
        print("\n\\* quality reused from the same weights measured earlier in the run (the "
              "llama.cpp peer: the baseline's figure, its weights dequantized), not scored "
              "on that runtime")  # fmt: skip
    h = headline(table)
    print(f"\nvs the best peer at the same batch size ({h['best_peer']}): "
          f"{_num(h['vs_best_peer'], '.2f')}×")  # fmt: skip
    print(
        f"vs the best peer within the {record['budget']['max_increase']:.0%} perplexity "
        f"budget ({h['best_peer_in_budget']}): {_num(h['vs_best_peer_in_budget'], '.2f')}×"
    )
    sources = sorted({r["energy_source"] for r in table if r["energy_source"]})
    print(f"energy source: {', '.join(sources)}; search: {_search_line(record)}")


def _search_line(record: dict[str, Any]) -> str:
    trials = [t for t in record["trials"] if t["number"]]
    measured = [t for t in trials if t.get("duplicate_of") is None and t["state"] != "failed"]
    full = [t for t in trials if t["stage"] == "full"]
    return (
        f"{len(trials)} trials asked, {len(measured)} configurations screened, "
        f"{len(full)} re-measured, {record['elapsed_s'] / 60:.1f} min"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/optimize-vs-peers"))
    parser.add_argument("--reuse", action="store_true", help="reuse OUT/optimize's search")
    parser.add_argument("extra", nargs="*", help="options passed to wattlm optimize")
    args = parser.parse_args()
    search_out = args.out / "optimize"
    done = search_out / "optimize.json"
    if args.reuse and done.is_file():
        record = json.loads(done.read_text(encoding="utf-8"))
    else:
        record = run_search(search_out, args.extra)
    if record.get("recommended") is None:
        print("the search recommended nothing: no peers to compare with")
        return
    from wattlm.bench.backends import backend_class

    others: list[tuple[str, dict[str, Any]]] = []
    for label, backend, fields in PEERS:
        cls = backend_class(backend)
        if not cls.is_available():
            print(f"{label}: not measured ({cls.install_hint()})")
            continue
        print(f"measuring {label} …", flush=True)
        folder = args.out / f"{backend}-{'-'.join(fields.values())}"
        others.append((label, measure_peer(record, backend, fields, folder)))
    table = rows(record, others)
    print_table(record, table)
    summary = {"table": table, "headline": headline(table), "search": _search_line(record)}
    (args.out / "peers.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
