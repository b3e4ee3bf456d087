"""``FederateConfig``: every option of a federated run, checked before anything starts.

Example:
    >>> cfg = FederateConfig(clients=4, rounds=2, strategy="fedprox", alpha=0.5)
    >>> (cfg.clients, cfg.partition)
    (4, 'dirichlet(alpha=0.5)')
    >>> FederateConfig(clients=0)
    Traceback (most recent call last):
    ...
    wattlm.errors.WattlmError: --clients must be >= 1, got 0 (federate needs at least one client)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wattlm._config import Config
from wattlm.errors import WattlmError
from wattlm.measure import METER_KINDS

#: server strategies (all Flower ``flwr.serverapp.strategy`` classes)
STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedadam")
WEIGHTINGS = ("samples", "equal")
COMPRESSIONS = ("none", "int8", "topk")
#: fault injections for tests and drills: ``<kind>@<round>:<partition>``
FAULT_KINDS = ("crash", "nan", "shape", "slow", "abort")


def _fail(message: str, hint: str) -> None:
    raise WattlmError(message, hint=hint)


@dataclass(frozen=True)
class FederateConfig(Config):
    """A federated fine-tuning run (see ``docs/federated.md`` for every field).

    ``alpha=None`` gives IID partitions; a number gives Dirichlet(α) label skew per client.
    ``local_steps`` caps the optimiser steps of one client in one round (``None``: the
    epochs decide). ``faults`` are test drills: ``crash@1:0`` makes partition 0 raise in
    round 1, ``nan@1:1`` / ``shape@1:1`` send a corrupt update, ``slow@1:0`` sleeps past
    the round timeout, ``abort@2:0`` stops the server before round 2 (a killed run).
    """

    model: str = "minilm-l6"
    data: str = "movie-sentiment"
    clients: int = 4
    rounds: int = 3
    strategy: str = "fedavg"
    weighting: str = "samples"
    fraction: float = 1.0
    local_epochs: int = 1
    local_steps: int | None = None
    lr: float = 5e-5
    batch_size: int = 16
    seq_len: int = 64
    mu: float = 0.01
    server_lr: float = 1.0
    server_momentum: float = 0.9
    alpha: float | None = None
    compression: str = "none"
    topk_fraction: float = 0.01
    max_train_samples: int | None = None
    eval_split: str = "test"
    eval_max_samples: int | None = None
    target: float = 0.80
    compare_central: bool = False
    lora: bool = False
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    lora_rank: int = 8
    meter: str = "estimate"
    threads: int = 1
    timeout_s: float = 600.0
    seed: int = 0
    faults: tuple[str, ...] = ()

    config_name = "federate config"

    def __post_init__(self) -> None:
        if self.clients < 1:
            _fail(
                f"--clients must be >= 1, got {self.clients}", "federate needs at least one client"
            )
        if self.rounds < 1:
            _fail(f"--rounds must be >= 1, got {self.rounds}", "run at least one round")
        if self.strategy not in STRATEGIES:
            _fail(f"unknown strategy {self.strategy!r}", f"choose one of {', '.join(STRATEGIES)}")
        if self.weighting not in WEIGHTINGS:
            _fail(f"unknown weighting {self.weighting!r}", f"choose one of {', '.join(WEIGHTINGS)}")
        if self.compression not in COMPRESSIONS:
            _fail(
                f"unknown compression {self.compression!r}",
                f"choose one of {', '.join(COMPRESSIONS)}",
            )
        if not (0.0 < self.fraction <= 1.0) or math.isnan(self.fraction):
            _fail(f"--fraction must be in (0, 1], got {self.fraction}", "e.g. --fraction 0.5")
        if self.alpha is not None and not (self.alpha > 0):
            _fail(f"--alpha must be > 0, got {self.alpha}", "leave it out for IID partitions")
        if not (0.0 < self.topk_fraction <= 1.0):
            _fail(f"--topk-fraction must be in (0, 1], got {self.topk_fraction}", "e.g. 0.01")
        for name in ("local_epochs", "batch_size", "seq_len", "threads", "lora_rank"):
            if getattr(self, name) < 1:
                _fail(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}", "")
        for name in ("local_steps", "max_train_samples", "eval_max_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                _fail(f"--{name.replace('_', '-')} must be >= 1, got {value}", "or leave it out")
        if not (self.lr > 0 and self.server_lr > 0 and self.timeout_s > 0):
            _fail("--lr, --server-lr and --timeout must be > 0", "e.g. --lr 5e-5")
        if self.mu < 0 or not (0 <= self.server_momentum < 1):
            _fail("--mu must be >= 0 and --server-momentum in [0, 1)", "e.g. --mu 0.01")
        if self.meter not in METER_KINDS:
            _fail(f"unknown meter {self.meter!r}", f"choose one of {', '.join(METER_KINDS)}")
        if self.eval_split not in ("validation", "test"):
            _fail(f"--eval-split must be validation or test, got {self.eval_split!r}", "")
        for fault in self.faults:
            parse_fault(fault)

    @property
    def partition(self) -> str:
        """How the training data is split between clients, in words."""
        return "iid" if self.alpha is None else f"dirichlet(alpha={self.alpha:g})"


def parse_fault(text: str) -> tuple[str, int, int]:
    """``"crash@1:0"`` -> ``("crash", 1, 0)``.

    Example:
        >>> parse_fault("nan@2:1")
        ('nan', 2, 1)
    """
    kind, _, where = text.partition("@")
    rnd, _, part = where.partition(":")
    if kind not in FAULT_KINDS or not rnd.isdigit() or not part.isdigit():
        raise WattlmError(
            f"bad fault {text!r}",
            hint=f"want <kind>@<round>:<partition>, kind one of {', '.join(FAULT_KINDS)}",
        )
    return kind, int(rnd), int(part)


def faults_for(config: FederateConfig, rnd: int, partition: int) -> set[str]:
    """Fault kinds injected for ``partition`` in round ``rnd``."""
    out = set()
    for text in config.faults:
        kind, r, p = parse_fault(text)
        if r == rnd and p == partition:
            out.add(kind)
    return out
