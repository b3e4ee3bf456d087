"""Options shared by every training recipe: how to optimise (:class:`TrainOptions`) and on
what data (:class:`DataConfig`).

Both are :class:`wattlm._config.Config` dataclasses: they validate themselves in
``__post_init__`` and round-trip through JSON (:meth:`to_dict` / :meth:`from_dict`); every option is recorded in the run's
``config.json`` and ``result.json``.

Example:
    >>> opts = TrainOptions(lr=1e-4, max_steps=100, precision="bf16", grad_accum=4)
    >>> TrainOptions.from_dict(opts.to_dict()) == opts
    True
    >>> TrainOptions(optimizer="lion")
    Traceback (most recent call last):
    wattlm.errors.WattlmError: unknown optimizer 'lion' (choose from: adamw, sgd, adagrad, adafactor, adamw8bit)
"""

from __future__ import annotations

from dataclasses import dataclass

from wattlm._config import Config, check, check_choice, check_int, check_positive
from wattlm.data.splits import SPLITS
from wattlm.measure import METER_KINDS
from wattlm.models.names import TASKS as MODEL_TASKS

OPTIMIZERS = ("adamw", "sgd", "adagrad", "adafactor", "adamw8bit")
SCHEDULES = ("constant", "linear", "cosine")
PRECISIONS = ("fp32", "bf16", "fp16")
TRAIN_LAYERS = ("all", "freeze-embeddings", "freeze-lower", "lora")
LENGTH_BATCHING = ("longest", "bucketed")
#: a recipe's task: ``auto`` reads it from the model and data
TASKS = ("auto", *MODEL_TASKS)


@dataclass(frozen=True)
class TrainOptions(Config):
    """How a recipe optimises, and what it measures while doing so.

    Attributes:
        lr: peak learning rate (reached after ``warmup_steps``).
        epochs: passes over the training data (``None``: bounded by ``max_steps`` only).
        max_steps: optimizer steps; the smaller of this and ``epochs`` wins.
        max_time_s: stop after this many seconds of training (checked after each step;
            the learning-rate schedule still spans the planned steps).
        batch_size: samples per micro-batch and per process.
        grad_accum: micro-batches accumulated per optimizer step. The global batch is
            ``batch_size × grad_accum × processes``.
        optimizer: ``adamw``, ``sgd`` (with ``momentum``), ``adagrad``, ``adafactor`` or
            ``adamw8bit`` (bitsandbytes, CUDA only).
        weight_decay: decoupled weight decay (not applied to biases and norms).
        momentum: SGD momentum.
        schedule: learning rate after warm-up: ``constant``, ``linear`` or ``cosine`` decay
            to zero at the last planned step.
        warmup_steps: linear warm-up from 0 to ``lr``.
        max_grad_norm: clip the global gradient norm (``None``: no clipping).
        precision: ``fp32``; ``bf16`` autocast (weights and optimizer stay fp32);
            ``fp16`` autocast with a gradient scaler (CUDA only).
        gradient_checkpointing: recompute activations in the backward pass (less memory,
            about one more forward of compute).
        compile: ``torch.compile`` the trained model.
        train_layers: which parameters train: ``all``, ``freeze-embeddings``,
            ``freeze-lower`` (embeddings and the lower half of the layers) or ``lora``
            (PEFT adapters of rank ``lora_rank`` on the attention projections, merged into
            the weights when the model is saved); see :mod:`wattlm.training.layers`.
        lora_rank: rank of the LoRA adapters.
        length_batching: ``longest`` (each micro-batch padded to its longest sample) or
            ``bucketed`` (samples of similar length batched together, then the batches
            shuffled: less padding).
        seed: seeds the initialisation of new weights, data order and dropout.
        checkpoint_every: save a resumable checkpoint every N steps (0: never).
        keep_checkpoints: keep the last checkpoint after the run finishes.
        log_every: print a progress line every N steps (every step goes to ``log.jsonl``).
        device: ``cpu`` or ``cuda`` (under torchrun each process takes ``cuda:LOCAL_RANK``).
        threads: CPU threads per process (``None``: torch's default).
        meter: energy meter (``auto``, ``nvml``, ``rapl``, ``estimate``, ``null``).
        grid_intensity_g_per_kwh: grid carbon intensity (``None``: the documented default).
    """

    config_name = "training options"

    lr: float = 5e-5
    epochs: int | None = 1
    max_steps: int | None = None
    max_time_s: float | None = None
    batch_size: int = 16
    grad_accum: int = 1
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    momentum: float = 0.9
    schedule: str = "linear"
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    compile: bool = False
    train_layers: str = "all"
    lora_rank: int = 8
    length_batching: str = "longest"
    seed: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: bool = False
    log_every: int = 10
    device: str = "cpu"
    threads: int | None = None
    meter: str = "auto"
    grid_intensity_g_per_kwh: float | None = None

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check(
            self.epochs is not None or self.max_steps is not None,
            "give epochs or max_steps (or both)",
            "e.g. --epochs 1 or --max-steps 200",
        )
        for name in ("epochs", "max_steps", "threads"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        if self.max_time_s is not None:
            check_positive("max_time_s", self.max_time_s)
        for name in ("batch_size", "grad_accum", "log_every"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup_steps", "checkpoint_every", "seed"):
            check_int(name, getattr(self, name), 0)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("train_layers", self.train_layers, TRAIN_LAYERS)
        check_choice("length batching", self.length_batching, LENGTH_BATCHING)
        check_int("lora_rank", self.lora_rank, 1)
        check_choice("meter", self.meter, METER_KINDS)
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        check(
            self.max_grad_norm is None or self.max_grad_norm > 0,
            f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}",
        )
        check(
            self.device == "cpu" or self.device.startswith("cuda"),
            f"unknown device {self.device!r}",
            "use cpu or cuda",
        )
        check(
            self.grid_intensity_g_per_kwh is None or self.grid_intensity_g_per_kwh >= 0,
            f"grid_intensity_g_per_kwh must be >= 0, got {self.grid_intensity_g_per_kwh}",
        )


@dataclass(frozen=True)
class DataConfig(Config):
    """The data a recipe trains and evaluates on.

    Attributes:
        data: a labelled set (``movie-sentiment``, ``.jsonl``/``.tsv``) for classifiers, or
            a text corpus (``wiki-sample``, ``.txt``) for causal LMs.
        seq_len: tokens per training sequence: the truncation length of a sentence for a
            classifier, the chunk length of the text for a causal LM.
        max_train_samples: use only N training samples (sentences or chunks), spread evenly
            over the split.
        eval_split: the held-out split quality is measured on.
        eval_max_samples: classifiers: labelled examples evaluated, spread evenly over the
            split (``None``: all).
        eval_max_tokens: causal LMs: tokens of the split scored for perplexity.
        eval_max_length: causal LMs: perplexity window (clipped to the model's context);
            windows advance by half of it.

    Example:
        >>> DataConfig("movie-sentiment", seq_len=64).eval_split
        'test'
    """

    config_name = "data config"

    data: str = "movie-sentiment"
    seq_len: int = 128
    max_train_samples: int | None = None
    eval_split: str = "test"
    eval_max_samples: int | None = None
    eval_max_tokens: int = 4096
    eval_max_length: int = 512

    def __post_init__(self) -> None:
        check(bool(self.data), "data must name a data set or a file")
        for name in ("seq_len", "eval_max_tokens", "eval_max_length"):
            check_int(name, getattr(self, name), 2)
        for name in ("max_train_samples", "eval_max_samples"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        check_choice("eval split", self.eval_split, SPLITS)
        check(self.eval_split != "train", "quality must be measured on a held-out split")
