"""Calibration profiles of the ``estimate:cpu-v2`` model: fitted per-core powers of one CPU.

``wattlm calibrate`` fits the static and dynamic power per core against a sensor and saves
them with the CPU they were fitted on (``calibration/cpu-v2.json`` in the user cache dir,
``$WATTLM_CACHE`` if set). Later estimate meters on the same CPU pick the profile up and
label their figures ``estimate:cpu-v2+calibrated``. A profile of another CPU, or a file that
is not a profile, is refused with a :class:`~wattlm.errors.WattlmError`.

Example:
    >>> from wattlm.measure.cpu_power import CpuIdentity
    >>> cpu = CpuIdentity("AMD EPYC", "AuthenticAMD", family=25, model=17)
    >>> p = CalibrationProfile(cpu_of(cpu), static_core_w=1.5, dynamic_core_w=4.0,
    ...                        sensor="rapl", max_abs_pct_error=3.0)
    >>> CalibrationProfile.from_dict(p.to_dict(), expect_cpu=cpu) == p
    True
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from wattlm.errors import WattlmError
from wattlm.measure.cpu_power import CpuIdentity

__all__ = ["PROFILE_KIND", "CalibrationProfile", "cpu_of", "default_profile_path", "load_profile"]

PROFILE_KIND = "wattlm-calibration"
PROFILE_VERSION = 1
MODEL = "cpu-v2"


def default_profile_path() -> Path:
    """Where ``wattlm calibrate`` saves, and estimate meters look for, this user's profile."""
    env = os.environ.get("WATTLM_CACHE")
    root = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("wattlm"))
    return root / "calibration" / f"{MODEL}.json"


def cpu_of(identity: CpuIdentity) -> dict[str, Any]:
    """The fields that say which CPU a profile was made on."""
    return {
        "model_name": identity.model_name,
        "vendor": identity.vendor,
        "family": identity.family,
        "model": identity.model,
    }


def _positive(data: dict[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WattlmError(f"{where}: {key} must be a number, got {value!r}")
    if value < 0:
        raise WattlmError(f"{where}: {key} must be >= 0, got {value}")
    return float(value)


@dataclass(frozen=True)
class CalibrationProfile:
    """Fitted parameters of ``estimate:cpu-v2`` for one CPU, and how good the fit was."""

    cpu: dict[str, Any]
    static_core_w: float
    dynamic_core_w: float
    sensor: str
    max_abs_pct_error: float
    mape_by_workload: dict[str, float] = field(default_factory=dict)
    created_utc: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": PROFILE_KIND,
            "version": PROFILE_VERSION,
            "model": MODEL,
            "cpu": dict(self.cpu),
            "static_core_w": self.static_core_w,
            "dynamic_core_w": self.dynamic_core_w,
            "sensor": self.sensor,
            "max_abs_pct_error": self.max_abs_pct_error,
            "mape_by_workload": dict(self.mape_by_workload),
            "created_utc": self.created_utc,
            "samples": list(self.samples),
        }

    @classmethod
    def from_dict(
        cls, data: Any, *, expect_cpu: CpuIdentity | None = None, where: str = "profile"
    ) -> CalibrationProfile:
        """Check and read a profile; ``expect_cpu`` refuses a profile of another CPU."""
        if not isinstance(data, dict) or data.get("kind") != PROFILE_KIND:
            raise WattlmError(
                f"{where} is not a wattlm calibration profile",
                hint="make one with `wattlm calibrate`",
            )
        if data.get("version") != PROFILE_VERSION or data.get("model") != MODEL:
            raise WattlmError(
                f"{where} is a profile of version {data.get('version')!r} for model "
                f"{data.get('model')!r}; this wattlm reads version {PROFILE_VERSION} for {MODEL}",
                hint="run `wattlm calibrate` again",
            )
        cpu = data.get("cpu")
        if not isinstance(cpu, dict) or not isinstance(cpu.get("model_name"), str):
            raise WattlmError(f"{where}: cpu must be an object with a model_name")
        if expect_cpu is not None and cpu != cpu_of(expect_cpu):
            raise WattlmError(
                f"{where} was made on CPU {cpu.get('model_name')!r} (family {cpu.get('family')}, "
                f"model {cpu.get('model')}), not on this one ({expect_cpu.model_name!r}, family "
                f"{expect_cpu.family}, model {expect_cpu.model})",
                hint="run `wattlm calibrate` on this machine",
            )
        mape = data.get("mape_by_workload", {})
        if not isinstance(mape, dict):
            raise WattlmError(f"{where}: mape_by_workload must be an object")
        return cls(
            cpu=dict(cpu),
            static_core_w=_positive(data, "static_core_w", where),
            dynamic_core_w=_positive(data, "dynamic_core_w", where),
            sensor=str(data.get("sensor", "")),
            max_abs_pct_error=_positive(data, "max_abs_pct_error", where),
            mape_by_workload={str(k): float(v) for k, v in mape.items()},
            created_utc=str(data.get("created_utc", "")),
            samples=list(data.get("samples", [])),
        )


def load_profile(path: str | Path, expect_cpu: CpuIdentity | None = None) -> CalibrationProfile:
    """Read a profile file; a missing, unreadable or corrupt file is a :class:`WattlmError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WattlmError(f"no calibration profile at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WattlmError(
            f"calibration profile {path} is not readable JSON ({err})",
            hint="delete it and run `wattlm calibrate` again",
        ) from None
    return CalibrationProfile.from_dict(data, expect_cpu=expect_cpu, where=f"profile {path}")
