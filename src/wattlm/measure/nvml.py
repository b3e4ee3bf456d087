"""NVIDIA GPU energy counters through NVML (``pynvml``, package ``nvidia-ml-py``): ``nvml``.

Each selected GPU's ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver
loaded; Volta and newer) is read at both ends of a window. Idle power, the mean of
``nvmlDeviceGetPowerUsage`` samples taken by :meth:`NvmlMeter.measure_idle` before the run,
is subtracted in the ``marginal`` view: ``max(0, counted_j - idle_power_w * time_s)``; the
``total`` view is ``counted_j`` (the work holds the whole GPU). Pass
``sync=torch.cuda.synchronize`` so queued kernels finish inside the window.

``pynvml`` is imported only when used; :meth:`NvmlMeter.available` is ``False`` (never an
exception) without the package, the driver or a GPU with an energy counter.

Example:
    >>> isinstance(NvmlMeter.available(), bool)
    True
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from wattlm.errors import WattlmError
from wattlm.measure.base import EnergyMeter, WindowEnergy, split_idle

__all__ = ["NvmlMeter", "list_gpus"]


def _pynvml() -> ModuleType:
    try:
        return importlib.import_module("pynvml")
    except ImportError as err:
        raise WattlmError(
            "NVML needs the nvidia-ml-py package", hint="pip install nvidia-ml-py"
        ) from err


def _visible() -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` as a list (``[]`` when set but empty), ``None`` when unset."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    return None if raw is None else [v.strip() for v in raw.split(",") if v.strip()]


def _handle(nv: ModuleType, cuda_index: int) -> Any:
    """NVML handle of CUDA device ``cuda_index``, honouring ``CUDA_VISIBLE_DEVICES``."""
    visible = _visible()
    if visible is None:
        return nv.nvmlDeviceGetHandleByIndex(cuda_index)
    if cuda_index >= len(visible):
        raise WattlmError(f"cuda:{cuda_index} is not visible (CUDA_VISIBLE_DEVICES={visible})")
    ident = visible[cuda_index]
    if ident.isdigit():
        return nv.nvmlDeviceGetHandleByIndex(int(ident))
    return nv.nvmlDeviceGetHandleByUUID(ident)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def list_gpus() -> list[dict[str, Any]]:
    """Name, memory and driver of every GPU NVML sees; ``[]`` when NVML is unusable."""
    try:
        nv = _pynvml()
        nv.nvmlInit()
    except Exception:
        return []
    try:
        driver = _text(nv.nvmlSystemGetDriverVersion())
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        return [
            {
                "index": i,
                "name": _text(nv.nvmlDeviceGetName(h)),
                "memory_bytes": int(nv.nvmlDeviceGetMemoryInfo(h).total),
                "driver": driver,
            }
            for i, h in enumerate(handles)
        ]
    except Exception:
        return []
    finally:
        nv.nvmlShutdown()


class NvmlMeter(EnergyMeter):
    """Energy of the selected GPUs from NVML's cumulative counters, idle subtracted.

    ``devices`` are CUDA device indices (``None``: every visible GPU).
    """

    source = "nvml"
    methods = {  # noqa: RUF012
        "total": "GPU energy counters (the whole GPU, idle included)",
        "marginal": "GPU energy counters minus idle power sampled before the run",
    }

    def __init__(
        self,
        devices: Sequence[int] | None = None,
        sync: Callable[[], None] | None = None,
        cpu_clock: Callable[[], float] = time.process_time,
        *,
        wall_clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(sync, cpu_clock, wall_clock=wall_clock)
        self._nv = nv = _pynvml()
        try:
            nv.nvmlInit()
        except nv.NVMLError as err:
            raise WattlmError(f"NVML is not usable: {err}", hint="use --meter estimate") from err
        try:
            visible = _visible()
            count = len(visible) if visible is not None else nv.nvmlDeviceGetCount()
            ids = range(count) if devices is None else devices
            self._handles = {int(i): _handle(nv, int(i)) for i in ids}
        except (nv.NVMLError, WattlmError) as err:
            nv.nvmlShutdown()
            raise WattlmError(f"NVML cannot open the requested GPUs: {err}") from err
        if not self._handles:
            nv.nvmlShutdown()
            raise WattlmError("NVML sees no GPU", hint="use --meter estimate")
        self._idle_w: dict[int, float] | None = None
        self._closed = False

    @classmethod
    def available(cls) -> bool:
        """Whether NVML loads and the first visible GPU has an energy counter."""
        try:
            meter = cls(devices=[0])
        except Exception:
            return False
        try:
            meter._read()
            return True
        except Exception:
            return False
        finally:
            meter.close()

    def measure_idle(
        self,
        seconds: float = 1.0,
        *,
        interval_s: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> float:
        """Average each GPU's power over ``seconds`` before the run; return the total watts."""
        samples: dict[int, list[float]] = {i: [] for i in self._handles}
        for _ in range(max(1, round(seconds / interval_s))):
            for i, h in self._handles.items():
                samples[i].append(self._nv.nvmlDeviceGetPowerUsage(h) / 1000.0)  # mW -> W
            sleep(interval_s)
        self._idle_w = {i: sum(v) / len(v) for i, v in samples.items()}
        return sum(self._idle_w.values())

    def idle_power_w(self) -> float | None:
        return None if self._idle_w is None else sum(self._idle_w.values())

    def _read(self) -> dict[int, int]:
        return {
            i: int(self._nv.nvmlDeviceGetTotalEnergyConsumption(h))
            for i, h in self._handles.items()
        }

    def _energy_between(
        self, start: Any, end: Any, time_s: float, cpu_time_s: float
    ) -> WindowEnergy:
        per_device = {str(i): (end[i] - start[i]) / 1000.0 for i in self._handles}  # mJ -> J
        return split_idle(per_device, self.idle_power_w(), time_s, "per_device_j")

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            devices=sorted(self._handles),
            idle_power_w=self.idle_power_w(),
            idle_power_w_per_device=None
            if self._idle_w is None
            else {str(k): v for k, v in self._idle_w.items()},
            idle_subtracted=self._idle_w is not None,
            formula="total_j = sum(delta total_energy_mj) / 1e3; "
            "marginal_j = max(0, total_j - idle_power_w * time_s)",
        )
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._nv.nvmlShutdown()
