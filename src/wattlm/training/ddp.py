"""Data-parallel training under ``torchrun``: gloo on CPU, NCCL on GPU.

``torchrun --nproc-per-node N -m wattlm train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous address in their environment;
:func:`init_distributed` joins them. Each process trains on its own slice of every global
batch (:func:`wattlm.training.data.step_plan`), ``DistributedDataParallel`` averages the
gradients, and only process 0 writes files. With equal-sized slices (the default: batches
are never ragged), N processes at ``--batch-size b`` compute the same update as one process
at ``--batch-size N·b`` (up to float summation order).

Without those variables (a plain ``wattlm train``) everything here is a no-op.

Example:
    >>> env = init_distributed("cpu")
    >>> (env.rank, env.world_size, env.is_main)
    (0, 1, True)
    >>> all_reduce_sum(2.5, env)
    2.5
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from wattlm.errors import WattlmError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a data-parallel job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise WattlmError(f"{name}={value!r} is not an integer") from None


def init_distributed(device: str = "cpu") -> DistEnv:
    """Join the torchrun job described by the environment (or return a 1-process env).

    The backend is NCCL when ``device`` is CUDA, else gloo; each process on a GPU machine
    takes ``cuda:LOCAL_RANK``.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{local}" if world > 1 or device == "cuda" else device
    if world <= 1:
        return DistEnv(device=device)
    import torch.distributed as dist

    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistEnv(rank, world, local, backend, device)


def wrap(module: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` when there are several processes."""
    if not env.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [env.local_rank] if env.device.startswith("cuda") else None
    return DistributedDataParallel(module, device_ids=ids)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)


def all_reduce_sum(value: float, env: DistEnv) -> float:
    """Sum of ``value`` over every process."""
    if not env.distributed:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return float(t.item())


def any_true(flag: bool, env: DistEnv) -> bool:
    """Whether ``flag`` is set on any process (e.g. one process ran out of time)."""
    return all_reduce_sum(1.0 if flag else 0.0, env) > 0


def barrier(env: DistEnv) -> None:
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()


def shutdown(env: DistEnv) -> None:
    if env.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
