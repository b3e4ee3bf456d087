"""Where trial evaluations run: in this process, one at a time, or as Ray tasks.

The search loop only submits ``(evaluator, spec)`` pairs and waits for the next result, so
the same ask/tell loop drives both. With Ray, each task asks for ``num_cpus = threads``
of its candidate, and each worker process loads the baseline model once.

Energy measured by trials that run at the same time on shared CPUs is contended (each
trial's CPU time and wall time include the others' interference): local runs are
sequential for that reason; Ray is for machines (or nodes) with room for each task.
"""

from __future__ import annotations

import itertools
from typing import Any

from wattlm.errors import WattlmError


class LocalExecutor:
    """Runs each evaluation in this process when it is waited for (capacity 1)."""

    capacity = 1

    def __init__(self) -> None:
        self._pending: dict[int, tuple[Any, Any]] = {}
        self._ids = itertools.count()

    def submit(self, evaluator: Any, spec: Any) -> int:
        handle = next(self._ids)
        self._pending[handle] = (evaluator, spec)
        return handle

    def wait(self, handles: list[int]) -> list[tuple[int, dict[str, Any]]]:
        handle = handles[0]
        evaluator, spec = self._pending.pop(handle)
        return [(handle, evaluator(spec))]

    def close(self) -> None:
        self._pending.clear()


def _run_remote(evaluator: Any, spec: Any) -> dict[str, Any]:
    return evaluator(spec)


class RayExecutor:
    """Runs evaluations as Ray tasks on an existing cluster (``auto`` or an address), or on a
    local Ray instance (``local``; reused when the caller already started one)."""

    def __init__(self, address: str, workers: int | None = None, *, max_threads: int = 1):
        try:
            import ray
        except ImportError:
            raise WattlmError(
                "--ray needs the ray package", hint='pip install "wattlm[ray]"'
            ) from None
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address != "local":
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise WattlmError(f"could not connect to Ray at {address!r}: {err}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = workers or max(1, cpus // max(1, max_threads))
        self._remote = ray.remote(_run_remote)
        self._refs: dict[int, Any] = {}
        self._ids = itertools.count()

    def submit(self, evaluator: Any, spec: Any) -> int:
        handle = next(self._ids)
        threads = max(1, int(spec_threads(spec)))
        self._refs[handle] = self._remote.options(num_cpus=threads).remote(evaluator, spec)
        return handle

    def wait(self, handles: list[int]) -> list[tuple[int, dict[str, Any]]]:
        by_ref = {self._refs[h]: h for h in handles}
        done, _ = self._ray.wait(list(by_ref), num_returns=1)
        out = []
        for ref in done:
            handle = by_ref[ref]
            del self._refs[handle]
            try:
                out.append((handle, self._ray.get(ref)))
            except Exception as err:  # the worker died or the task raised
                from wattlm.search.evaluate import failed_outcome

                out.append((handle, failed_outcome(f"Ray task failed: {err}".splitlines()[0])))
        return out

    def close(self) -> None:
        for ref in self._refs.values():
            self._ray.cancel(ref, force=True)
        self._refs.clear()


def spec_threads(spec: Any) -> int:
    """CPU threads a trial asks for: its candidate's (optimize) or its own (train search)."""
    candidate = getattr(spec, "candidate", None)
    if candidate is not None:
        return candidate.threads
    return getattr(spec, "threads", None) or 1


def make_executor(ray_address: str | None, workers: int | None, max_threads: int) -> Any:
    if ray_address is None:
        return LocalExecutor()
    return RayExecutor(ray_address, workers, max_threads=max_threads)
