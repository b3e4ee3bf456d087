"""Which CPU is this, and how many watts does one busy core of it draw?

The table lives in ``measure/data/cpu_power.json``: a handful of server SKUs, each with its
package TDP, core count and a citation. A CPU is matched, in order, by

1. ``model-name``: a SKU found in ``/proc/cpuinfo``'s ``model name`` (bare metal);
2. ``family-model``: the ``cpu family`` / ``model`` pair picks a representative SKU of that
   generation (VMs often report only ``AMD EPYC``);
3. ``generic-default``: CodeCarbon's 4 W per core, flagged as such.

Example:
    >>> ident = CpuIdentity("AMD EPYC", "AuthenticAMD", family=25, model=17)
    >>> power = lookup_cpu_power(ident)
    >>> (power.sku, power.match, power.per_core_w)
    ('AMD EPYC 9554', 'family-model', 5.625)
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "CpuIdentity",
    "CpuPower",
    "allocated_cores",
    "describe_cpu",
    "load_table",
    "lookup_cpu_power",
    "machine_cores",
    "read_cpu_identity",
]


def allocated_cores() -> int:
    """Logical CPUs this process may run on (its affinity), the cores the work holds.

    Example:
        >>> allocated_cores() >= 1
        True
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return machine_cores()


def machine_cores() -> int:
    """Logical CPUs of the whole machine (what package-wide counters cover).

    Example:
        >>> machine_cores() >= allocated_cores()
        True
    """
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class CpuIdentity:
    """What the operating system says about the CPU (``/proc/cpuinfo`` on Linux)."""

    model_name: str
    vendor: str
    family: int | None = None
    model: int | None = None
    flags: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class CpuPower:
    """Per-core active power of a CPU and where the figure came from."""

    per_core_w: float
    match: str  # "model-name" | "family-model" | "generic-default"
    source: str
    sku: str | None = None
    codename: str | None = None
    tdp_w: float | None = None
    package_cores: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_cpu_identity(path: str | Path = "/proc/cpuinfo") -> CpuIdentity:
    """Parse the first processor block of ``/proc/cpuinfo`` (or fall back to ``platform``).

    Example:
        >>> read_cpu_identity("/nonexistent").model_name != ""
        True
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuIdentity(platform.processor() or platform.machine() or "unknown", "unknown")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # end of the first processor block
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return CpuIdentity(
        model_name=fields.get("model name", platform.processor() or "unknown"),
        vendor=fields.get("vendor_id", "unknown"),
        family=_int_or_none(fields.get("cpu family")),
        model=_int_or_none(fields.get("model")),
        flags=tuple(fields.get("flags", "").split()),
    )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@functools.lru_cache(maxsize=1)
def load_table() -> dict[str, Any]:
    """The bundled CPU power table (``measure/data/cpu_power.json``), parsed once."""
    raw = resources.files("wattlm.measure").joinpath("data/cpu_power.json").read_text("utf-8")
    return json.loads(raw)


def lookup_cpu_power(identity: CpuIdentity, table: dict[str, Any] | None = None) -> CpuPower:
    """Match ``identity`` against the table: model name, then family/model, then default."""
    table = table if table is not None else load_table()
    skus = table["skus"]
    for entry in skus:
        if re.search(entry["name_regex"], identity.model_name):
            return _from_entry(entry, "model-name")
    for entry in skus:
        pairs = {tuple(p) for p in entry.get("representative_for", [])}
        same_vendor = entry["vendor"] == identity.vendor
        if same_vendor and (identity.family, identity.model) in pairs:
            return _from_entry(entry, "family-model")
    default = table["generic_default"]
    return CpuPower(
        per_core_w=float(default["per_core_w"]), match="generic-default", source=default["source"]
    )


def _from_entry(entry: dict[str, Any], match: str) -> CpuPower:
    return CpuPower(
        per_core_w=entry["tdp_w"] / entry["cores"],
        match=match,
        source=entry["source"],
        sku=entry["sku"],
        codename=entry.get("codename"),
        tdp_w=float(entry["tdp_w"]),
        package_cores=int(entry["cores"]),
    )


def describe_cpu(identity: CpuIdentity, power: CpuPower) -> dict[str, Any]:
    """The CPU and its looked-up power, as an estimate meter's ``describe()`` records them.

    Example:
        >>> ident = CpuIdentity("AMD EPYC", "AuthenticAMD", family=25, model=17)
        >>> d = describe_cpu(ident, lookup_cpu_power(ident))
        >>> d["cpu"]["family"], d["cpu_match"], d["sku"]
        (25, 'family-model', 'AMD EPYC 9554')
    """
    return {
        "cpu": {
            "model_name": identity.model_name,
            "vendor": identity.vendor,
            "family": identity.family,
            "model": identity.model,
        },
        "cpu_match": power.match,
        "sku": power.sku,
        "codename": power.codename,
        "tdp_w": power.tdp_w,
        "package_cores": power.package_cores,
        "per_core_w": power.per_core_w,
        "cpu_power_source": power.source,
    }
