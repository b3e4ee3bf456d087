"""``wattlm federate``: federated fine-tuning on Flower, every client's joules and bytes.

Runs Flower's simulation runtime on this machine (one process per client), or with
``--superlink HOST:PORT`` submits the run to a real SuperLink and its SuperNodes; writes
``--out/federate.json``, ``report.md`` and ``report.html``. Options left out keep the
defaults of :class:`wattlm.federate.config.FederateConfig`.
"""

from __future__ import annotations

from pathlib import Path

import typer


def federate_command(
    out: Path = typer.Option(
        ..., help="Run folder (new or empty; with --resume, the killed run's)."
    ),
    model: str = typer.Option(
        "minilm-l6", help="Classifier for labelled data, causal LM for text."
    ),
    data: str = typer.Option(
        "movie-sentiment",
        help="Labelled set (movie-sentiment, .jsonl, .tsv) or text (wiki-sample, .txt).",
    ),
    clients: int = typer.Option(4, help="Number of clients (simulated SuperNodes)."),
    rounds: int = typer.Option(3, help="Federated rounds."),
    strategy: str = typer.Option("fedavg", help="fedavg, fedprox, fedavgm or fedadam."),
    weighting: str = typer.Option(
        "samples", help="FedAvg weights: samples (rows per client) or equal."
    ),
    fraction: float = typer.Option(1.0, help="Fraction of clients sampled per round, in (0, 1]."),
    alpha: float = typer.Option(
        None, help="Dirichlet α of the label skew (non-IID); leave out for IID."
    ),
    local_epochs: int = typer.Option(1, help="Local passes over a client's data per round."),
    local_steps: int = typer.Option(None, help="Cap on a client's optimizer steps per round."),
    lr: float = typer.Option(5e-5, help="Client learning rate (AdamW)."),
    batch_size: int = typer.Option(16, help="Client batch size."),
    seq_len: int = typer.Option(64, help="Tokens per sentence."),
    mu: float = typer.Option(0.01, help="FedProx proximal term μ."),
    server_lr: float = typer.Option(1.0, help="Server learning rate (fedavgm, fedadam)."),
    server_momentum: float = typer.Option(0.9, help="Server momentum (fedavgm)."),
    compression: str = typer.Option("none", help="Update compression: none, int8 or topk."),
    topk_fraction: float = typer.Option(0.01, help="Share of entries top-k sends per tensor."),
    max_train_samples: int = typer.Option(
        None, help="Training rows (articles for text) over all clients."
    ),
    eval_split: str = typer.Option("test", help="Held-out split: validation or test."),
    eval_max_samples: int = typer.Option(
        None, help="Held-out rows (tokens for text) scored each round."
    ),
    target: float = typer.Option(
        0.80, help="Accuracy (or perplexity, for text) whose cost is reported."
    ),
    compare_central: bool = typer.Option(
        False, "--compare-central", help="Also train centrally on the union of the clients' data."
    ),
    lora: bool = typer.Option(
        False, "--lora", help="Train and send only LoRA adapters (and the head)."
    ),
    lora_targets: str = typer.Option(
        "q_proj,v_proj", help="Comma-separated linear layers LoRA wraps."
    ),
    lora_rank: int = typer.Option(8, help="LoRA rank."),
    meter: str = typer.Option(
        "estimate", help="Energy meter of each party (estimate splits clients by CPU time)."
    ),
    threads: int = typer.Option(1, help="CPU threads (and Ray CPUs) per client."),
    timeout_s: float = typer.Option(600.0, "--timeout", help="Seconds a round waits for replies."),
    seed: int = typer.Option(0, help="Seed of the partitions, head, data order."),
    fault: list[str] = typer.Option(
        [], help="Inject a fault: <crash|nan|shape|slow|abort>@<round>:<client> (repeatable)."
    ),
    superlink: str = typer.Option(
        None, help="Submit to this SuperLink (host:port) with flwr run instead of simulating."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out after its last finished round."
    ),
    progress: bool = typer.Option(True, help="Show Flower's and Ray's log."),
) -> None:
    """Federated fine-tuning on Flower: each client's joules and bytes, per round."""
    from wattlm.federate.config import FederateConfig
    from wattlm.federate.run import RESULT, federate

    cfg = FederateConfig(
        model=model,
        data=data,
        clients=clients,
        rounds=rounds,
        strategy=strategy,
        weighting=weighting,
        fraction=fraction,
        alpha=alpha,
        local_epochs=local_epochs,
        local_steps=local_steps,
        lr=lr,
        batch_size=batch_size,
        seq_len=seq_len,
        mu=mu,
        server_lr=server_lr,
        server_momentum=server_momentum,
        compression=compression,
        topk_fraction=topk_fraction,
        max_train_samples=max_train_samples,
        eval_split=eval_split,
        eval_max_samples=eval_max_samples,
        target=target,
        compare_central=compare_central,
        lora=lora,
        lora_targets=tuple(t.strip() for t in lora_targets.split(",") if t.strip()),
        lora_rank=lora_rank,
        meter=meter,
        threads=threads,
        timeout_s=timeout_s,
        seed=seed,
        faults=tuple(fault),
    )
    result = federate(cfg, out, resume=resume, progress=progress, superlink=superlink)
    t = result["totals"]
    metric = result["initial_quality"]["metric"]
    energy = "n/a" if t["energy_j"] is None else f"{t['energy_j']:.1f} J"
    line = (
        f"federated: {metric} {t['final_quality']:.4f}, training energy {energy} "
        f"({result['energy']['source']}), {t['bytes']:,} bytes"
    )
    central = result["central"]
    if central:
        c_energy = "n/a" if central["energy_j"] is None else f"{central['energy_j']:.1f} J"
        line += f"; centralised: {metric} {central['final_quality']:.4f}, {c_energy}"
    typer.echo(line)
    typer.echo(f"wrote {out / RESULT}, report.md, report.html")


def register(app: typer.Typer) -> None:
    """Attach the ``federate`` command to ``app``."""
    app.command("federate")(federate_command)
