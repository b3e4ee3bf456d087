"""The centralised baseline: the same model, start, budget and evaluation, trained in one
process on the union of the clients' data.

Budget: one "round" is ``local_epochs`` passes over the union (each client makes
``local_epochs`` passes over its share in a federated round, so with every client sampled
both see the same rows as often); quality is measured after each, like the server does.

Example:
    >>> from wattlm.federate.config import FederateConfig
    >>> r = run_central(FederateConfig(clients=2, rounds=1))  # doctest: +SKIP
    >>> sorted(r)  # doctest: +SKIP
    ['energy_j', 'energy_source', 'rounds', 'rows', ...]
"""

from __future__ import annotations

from typing import Any

from wattlm.federate.config import FederateConfig


def run_central(config: FederateConfig, meter=None) -> dict[str, Any]:
    """Train centrally and return per-round quality and energy, and the totals."""
    import torch

    from wattlm.federate.local import (
        as_data,
        client_units,
        evaluate,
        held_out,
        load_global_model,
        task_of,
        train_data,
    )
    from wattlm.measure.factory import make_meter

    meter = meter or make_meter(config.meter, idle_seconds=0)
    torch.set_num_threads(config.threads)
    lm = load_global_model(config)
    units = [u for part in client_units(config) for u in part]
    data = as_data(units, lm.tokenizer, task_of(config), config.seq_len)
    test = held_out(config, lm.tokenizer)
    steps_cap = None
    if config.local_steps is not None:  # the clients' step budget, summed over clients
        steps_cap = config.local_steps * config.clients
    rounds = []
    for rnd in range(1, config.rounds + 1):
        meter.begin_window("central-train")
        stats = train_data(
            lm,
            data,
            epochs=config.local_epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            seed=config.seed * 1_000_003 + rnd * 1009,
            max_steps=steps_cap,
        )
        m = meter.end_window("central-train")
        rounds.append(
            {
                "round": rnd,
                "energy_j": m.energy_j,
                "train_s": m.time_s,
                "cpu_s": m.cpu_time_s,
                "steps": stats["steps"],
                "samples_seen": stats["samples"],
                "quality": evaluate(lm, test, config.seq_len)["value"],
            }
        )
    energies = [r["energy_j"] for r in rounds]
    return {
        "rows": len(units),
        "metric": "accuracy" if test.rows is not None else "perplexity",
        "energy_source": meter.source,
        "rounds": rounds,
        "energy_j": None if None in energies else sum(energies),
        "train_s": sum(r["train_s"] for r in rounds),
        "final_quality": rounds[-1]["quality"],
    }
