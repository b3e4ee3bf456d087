"""The one training loop every recipe runs.

A recipe hands over a *loss module*: an ``nn.Module`` whose ``forward(inputs)`` returns
``{"loss": tensor, ...}`` (extra entries are logged), and whose trainable parameters are
what the optimizer updates. Everything else lives here, once:

- gradient accumulation (``grad_accum`` micro-batches, each loss divided by their number;
  ``no_sync`` on all but the last under data parallelism);
- precision (bf16 autocast; fp16 autocast + gradient scaler on CUDA), gradient clipping,
  the optimizer and the warm-up schedule (:mod:`wattlm.training.optim`);
- throughput, peak memory and energy per step, each step's energy window labelled with its
  source, logged to ``log.jsonl`` and to the terminal (:mod:`wattlm.training.steplog`);
- checkpoints every ``checkpoint_every`` steps and exact resume
  (:mod:`wattlm.training.checkpoint`);
- the stop rule: ``epochs``, ``max_steps`` or ``max_time_s``, whichever comes first.

Example:
    >>> import torch
    >>> from wattlm.training.data import TextChunks
    >>> from wattlm.training.options import TrainOptions
    >>> class Loss(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.emb = torch.nn.Embedding(10, 1)
    ...     def forward(self, inputs):
    ...         return {"loss": self.emb(inputs["input_ids"]).pow(2).mean()}
    >>> run = LoopSpec(Loss(), TextChunks(list(range(10)) * 4, 5), TrainOptions(max_steps=3, batch_size=2))
    >>> result = train_loop(run)
    >>> (result.steps, result.samples, result.stopped_by)
    (3, 6, 'max_steps')
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wattlm.errors import WattlmError
from wattlm.measure.factory import make_meter
from wattlm.measure.memory import PeakRssSampler
from wattlm.training import checkpoint as ckpt
from wattlm.training.data import bucket_plan, step_plan, steps_per_epoch
from wattlm.training.ddp import DistEnv, all_reduce_sum, any_true, barrier, wrap
from wattlm.training.layers import apply_train_layers
from wattlm.training.optim import build_optimizer, build_schedule, make_precision
from wattlm.training.options import TrainOptions
from wattlm.training.steplog import LOG_FILE, StepLog, format_step, throughput


@dataclass
class LoopSpec:
    """What one run of the loop needs.

    Attributes:
        module: the loss module (see the module docstring), not yet wrapped.
        data: training data with ``__len__`` and ``collate(indices) -> Batch``.
        options: the run's :class:`TrainOptions`.
        env: this process's place in a data-parallel job.
        run_dir: where ``log.jsonl`` and checkpoints go (``None``: nowhere).
        compat: what a checkpoint must match to be resumed (see :mod:`.checkpoint`).
        resume: a loaded, already checked checkpoint (:func:`open_checkpoint`) or ``None``.
        after_step: called after every optimizer step (e.g. re-apply pruning masks).
        on_step: called with each step's record (tests use it to interrupt a run).
        meter: an energy meter (default: ``make_meter(options.meter)`` for the device).
        progress: print a progress line every ``options.log_every`` steps on stderr.
    """

    module: torch.nn.Module
    data: Any
    options: TrainOptions
    env: DistEnv = field(default_factory=DistEnv)
    run_dir: Path | None = None
    compat: dict[str, Any] = field(default_factory=dict)
    resume: dict[str, Any] | None = None
    after_step: Callable[[], None] | None = None
    on_step: Callable[[dict[str, Any]], None] | None = None
    meter: Any = None
    progress: bool = False


@dataclass
class LoopResult:
    """Totals of a training run (all processes, resumed sessions included)."""

    steps: int
    planned_steps: int
    steps_per_epoch: int
    epochs: float
    samples: int
    tokens: int
    time_s: float
    energy_j: float | None
    energy_source: str
    energy_scope: str
    meter: dict[str, Any]
    idle_subtracted: bool
    stopped_by: str
    resumed_from_step: int | None
    loss_first: float | None
    loss_last: float | None
    peak_rss_bytes: int
    start_rss_bytes: int
    peak_cuda_bytes: int | None
    global_batch_size: int
    world_size: int


def planned_steps(n: int, options: TrainOptions, world_size: int) -> tuple[int, int]:
    """``(steps per epoch, steps planned)`` for ``n`` training samples."""
    per_epoch = steps_per_epoch(n, options.batch_size, options.grad_accum, world_size)
    if per_epoch < 1:
        global_batch = options.batch_size * options.grad_accum * world_size
        raise WattlmError(
            f"{n} training samples are fewer than one global batch of {global_batch}",
            hint="lower --batch-size or --grad-accum, or give more data",
        )
    bounds = [options.max_steps or math.inf, (options.epochs or math.inf) * per_epoch]
    return per_epoch, int(min(bounds))


def open_checkpoint(
    run_dir: Path, compat: dict[str, Any], env: DistEnv, *, device: str = "cpu"
) -> dict[str, Any]:
    """Load the newest checkpoint of ``run_dir`` and check it matches ``compat`` (raises
    a clear error otherwise). Call it before any other work, so a bad resume fails fast."""
    folder = ckpt.latest_checkpoint(run_dir)
    if folder is None:
        raise WattlmError(f"nothing to resume: {run_dir} has no checkpoint", hint="drop --resume")
    state = ckpt.load_checkpoint(folder, rank=env.rank, device=device)
    ckpt.check_compatible(state["compat"], compat, str(folder))
    state["folder"] = str(folder)
    return state


def energy_scope(source: str, world_size: int) -> str:
    """How per-process energy figures combine into the run's figure."""
    if world_size == 1:
        return "this process"
    if source == "rapl":  # every process reads the same package counters
        return f"machine counters, mean of {world_size} processes' readings"
    return f"sum over {world_size} processes"


def _combine_energy(value: float | None, source: str, env: DistEnv) -> float | None:
    missing = any_true(value is None, env)
    total = all_reduce_sum(0.0 if value is None else value, env)
    if missing:
        return None
    return total / env.world_size if source == "rapl" else total


def _make_meter(spec: LoopSpec):
    if spec.meter is not None:
        return spec.meter

    device = spec.env.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    return make_meter(spec.options.meter, device=device, sync=sync)


def _peak_memory(device: str, rss) -> tuple[int, str]:
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device)), "cuda_allocated"
    return int(rss.peak_rss_bytes), "rss"


class _Trainer:
    """State of one loop run; :func:`train_loop` is its only user."""

    def __init__(self, spec: LoopSpec) -> None:
        self.spec, self.opts, self.env = spec, spec.options, spec.env
        self.per_epoch, self.total = planned_steps(len(spec.data), self.opts, self.env.world_size)
        self.module = spec.module
        self.module.train()
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.module.named_parameters(), self.opts)
        self.scheduler = build_schedule(self.optimizer, self.opts, self.total)
        self.precision = make_precision(self.opts, self.env.device)
        self.pos: dict[str, Any] = {
            "step": 0, "epoch": 0, "step_in_epoch": 0, "time_s": 0.0, "energy_j": 0.0,
            "samples": 0, "tokens": 0, "loss_first": None,
        }  # fmt: skip
        if spec.resume is not None:
            self._restore(spec.resume)
        else:
            torch.manual_seed(self.opts.seed)
        self.wrapped = wrap(self.module, self.env)
        self.meter = _make_meter(spec)

    def _restore(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.precision.scaler is not None and state.get("scaler"):
            self.precision.scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        self.pos = dict(state["position"])

    def step(self, groups: list[list[int]]) -> dict[str, Any]:
        """One optimizer step over ``groups`` (this process's micro-batches)."""
        name = f"step-{self.pos['step'] + 1}"
        self.meter.begin_window(name)
        start = time.perf_counter()
        loss_sum, samples, tokens, parts = 0.0, 0, 0, {}
        for i, indices in enumerate(groups):
            batch = self.spec.data.collate(indices).to(self.env.device)
            last = i == len(groups) - 1
            sync = (
                contextlib.nullcontext()
                if last or not self.env.distributed
                else self.wrapped.no_sync()
            )
            with sync:
                with self.precision.autocast():
                    out = self.wrapped(batch.inputs)
                loss = out["loss"] / len(groups)
                scaler = self.precision.scaler
                (scaler.scale(loss) if scaler else loss).backward()
            loss_sum += float(loss.detach())
            for key, value in out.items():
                if key != "loss":
                    parts[key] = parts.get(key, 0.0) + float(value) / len(groups)
            samples, tokens = samples + batch.samples, tokens + batch.tokens
        lr = self.scheduler.get_last_lr()[0]
        grad_norm = self._optimizer_step()
        if self.spec.after_step is not None:
            self.spec.after_step()
        m = self.meter.end_window(name)
        time_s = time.perf_counter() - start
        world = self.env.world_size
        return {
            "step": self.pos["step"] + 1,
            "loss": all_reduce_sum(loss_sum, self.env) / world,
            **{k: all_reduce_sum(v, self.env) / world for k, v in parts.items()},
            "lr": lr,
            "grad_norm": grad_norm,
            "samples": int(all_reduce_sum(samples, self.env)),
            "tokens": int(all_reduce_sum(tokens, self.env)),
            "time_s": time_s,
            "energy_j": _combine_energy(m.energy_j, m.source, self.env),
            "energy_source": m.source,
        }

    def _optimizer_step(self) -> float | None:
        scaler = self.precision.scaler
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        grad_norm = None
        if self.opts.max_grad_norm is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.opts.max_grad_norm))
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def save(self) -> None:
        run_dir = self.spec.run_dir
        state = {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.precision.scaler.state_dict() if self.precision.scaler else {},
            "position": dict(self.pos),
            "compat": self.spec.compat,
        }
        barrier(self.env)
        if self.env.is_main:
            folder = ckpt.save_checkpoint(run_dir, self.pos["step"], state, rank=0)
        barrier(self.env)
        if not self.env.is_main:
            ckpt.save_checkpoint(run_dir, self.pos["step"], state, rank=self.env.rank)
        barrier(self.env)
        if self.env.is_main:
            ckpt.prune_checkpoints(run_dir, keep=folder)


def train_loop(spec: LoopSpec) -> LoopResult:
    """Train ``spec.module`` on ``spec.data`` by ``spec.options`` (see the module notes)."""
    t = _Trainer(spec)
    opts, env, pos = t.opts, t.env, t.pos
    resumed = spec.resume is not None
    resumed_from = pos["step"] if resumed else None
    log_path = spec.run_dir / LOG_FILE if spec.run_dir is not None and env.is_main else None
    log = StepLog(log_path, resume_step=resumed_from)
    say = _printer(spec)
    if resumed:
        say(f"resuming from step {resumed_from} ({spec.resume['folder']})")
    if env.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(env.device)
    prior_time, prior_energy = pos["time_s"], pos["energy_j"]
    stopped_by = "epochs" if pos["step"] >= t.total else None
    t.meter.begin_window("train")
    start = time.perf_counter()
    loss_last = None
    try:
        with PeakRssSampler() as rss:
            while stopped_by is None:
                plan = step_plan(
                    len(spec.data), batch_size=opts.batch_size, grad_accum=opts.grad_accum,
                    epoch=pos["epoch"], seed=opts.seed, rank=env.rank, world_size=env.world_size,
                )  # fmt: skip
                if opts.length_batching == "bucketed" and hasattr(spec.data, "lengths"):
                    lengths = spec.data.lengths()
                    plan = bucket_plan(plan, lengths, seed=opts.seed, epoch=pos["epoch"])
                for groups in plan[pos["step_in_epoch"] : t.per_epoch]:
                    record = t.step(groups)
                    loss_last = record["loss"]
                    pos["step"] += 1
                    pos["step_in_epoch"] += 1
                    if pos["step_in_epoch"] == t.per_epoch:
                        pos["epoch"], pos["step_in_epoch"] = pos["epoch"] + 1, 0
                    pos["samples"] += record["samples"]
                    pos["tokens"] += record["tokens"]
                    pos["time_s"] = prior_time + time.perf_counter() - start
                    if pos["loss_first"] is None:
                        pos["loss_first"] = record["loss"]
                    if pos["energy_j"] is not None:
                        e = record["energy_j"]
                        pos["energy_j"] = None if e is None else pos["energy_j"] + e
                    peak, kind = _peak_memory(env.device, rss)
                    record.update(
                        epoch=round(pos["epoch"] + pos["step_in_epoch"] / t.per_epoch, 4),
                        **throughput(samples=record["samples"], tokens=record["tokens"], time_s=record["time_s"]),
                        peak_memory_bytes=peak, memory_kind=kind,
                    )  # fmt: skip
                    log.write(record)
                    if pos["step"] % opts.log_every == 0 or pos["step"] == t.total:
                        say(format_step(record, t.total))
                    if opts.checkpoint_every and pos["step"] % opts.checkpoint_every == 0:
                        t.save()
                    if spec.on_step is not None:
                        spec.on_step(record)
                    stopped_by = _stop_reason(pos, t, opts, env)
                    if stopped_by:
                        break
                else:
                    if pos["step"] >= t.total:
                        stopped_by = "max_steps" if t.total == opts.max_steps else "epochs"
    finally:
        log.close()
        total = t.meter.end_window("train")
    peak_cuda = (
        int(torch.cuda.max_memory_allocated(env.device)) if env.device.startswith("cuda") else None
    )
    source = total.source
    return LoopResult(
        steps=pos["step"],
        planned_steps=t.total,
        steps_per_epoch=t.per_epoch,
        epochs=round(pos["step"] / t.per_epoch, 4),
        samples=pos["samples"],
        tokens=pos["tokens"],
        time_s=pos["time_s"],
        energy_j=_run_energy(prior_energy, total, env),
        energy_source=source,
        energy_scope=energy_scope(source, env.world_size),
        meter=t.meter.describe(),
        idle_subtracted=t.meter.idle_power_w() is not None,
        stopped_by=stopped_by or "max_steps",
        resumed_from_step=resumed_from,
        loss_first=pos["loss_first"],
        loss_last=loss_last,
        peak_rss_bytes=int(rss.peak_rss_bytes),
        start_rss_bytes=int(rss.start_rss_bytes),
        peak_cuda_bytes=peak_cuda,
        global_batch_size=opts.batch_size * opts.grad_accum * env.world_size,
        world_size=env.world_size,
    )


def _stop_reason(pos: dict, t: _Trainer, opts: TrainOptions, env: DistEnv) -> str | None:
    if pos["step"] >= t.total:
        return "max_steps" if t.total == opts.max_steps else "epochs"
    out_of_time = opts.max_time_s is not None and pos["time_s"] >= opts.max_time_s
    return "max_time" if any_true(out_of_time, env) else None


def _run_energy(prior: float | None, total, env: DistEnv) -> float | None:
    """Energy of the whole run: earlier sessions (up to their last checkpoint) + this one."""
    this = _combine_energy(total.energy_j, total.source, env)
    if prior is None or this is None:
        return None
    return prior + this


def _printer(spec: LoopSpec) -> Callable[[str], None]:
    if not (spec.progress and spec.env.is_main):
        return lambda _line: None
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    return lambda line: console.print(line, markup=False)


def prepare_model(model: torch.nn.Module, options: TrainOptions) -> None:
    """Apply the model-level options in place: no KV cache while training, which layers
    train (``train_layers``: frozen or LoRA-adapted, :mod:`wattlm.training.layers`), gradient
    checkpointing (non-reentrant) and ``torch.compile`` (``Module.compile``, which keeps
    the state-dict names, so checkpoints stay compatible)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "use_cache"):
        config.use_cache = False
    if options.train_layers != "all":
        apply_train_layers(
            model, options.train_layers, lora_rank=options.lora_rank, seed=options.seed
        )
    if options.gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise WattlmError(f"{type(model).__name__} does not support gradient checkpointing")
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if options.compile:
        model.compile()


def disable_checkpointing(model: torch.nn.Module) -> None:
    """Undo gradient checkpointing (before saving and evaluating a trained model)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        return
    if hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()
