"""CPU identification from /proc/cpuinfo text and the per-core power lookup."""

from __future__ import annotations

import re

import pytest

from wattlm.measure.cpu_power import CpuIdentity, load_table, lookup_cpu_power, read_cpu_identity

VM_GENOA = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: should not be read
"""


def _cpuinfo(tmp_path, text: str):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_reads_first_processor_block(tmp_path) -> None:
    ident = read_cpu_identity(_cpuinfo(tmp_path, VM_GENOA))
    assert ident == CpuIdentity("AMD EPYC", "AuthenticAMD", 25, 17, ident.flags)
    assert "avx512_bf16" in ident.flags


def test_missing_cpuinfo_falls_back(tmp_path) -> None:
    ident = read_cpu_identity(tmp_path / "missing")
    assert ident.vendor == "unknown" and ident.family is None and ident.model_name


def test_vm_genoa_uses_representative_sku(tmp_path) -> None:
    power = lookup_cpu_power(read_cpu_identity(_cpuinfo(tmp_path, VM_GENOA)))
    assert (power.match, power.sku, power.tdp_w, power.package_cores) == (
        "family-model", "AMD EPYC 9554", 360.0, 64,
    )  # fmt: skip
    assert power.per_core_w == 360 / 64 == 5.625
    assert "AMD" in power.source


@pytest.mark.parametrize(
    ("ident", "sku", "per_core_w"),
    [
        (CpuIdentity("AMD EPYC 7763 64-Core Processor", "AuthenticAMD", 25, 1), "AMD EPYC 7763", 280 / 64),
        (CpuIdentity("AMD EPYC 9554P 64-Core Processor", "AuthenticAMD", 25, 17), "AMD EPYC 9554", 5.625),
        (CpuIdentity("Intel(R) Xeon(R) Platinum 8480+", "GenuineIntel", 6, 143), "Intel Xeon Platinum 8480+", 6.25),
        (CpuIdentity("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", "GenuineIntel", 6, 106), "Intel Xeon Platinum 8380", 6.75),
    ],
)  # fmt: skip
def test_model_name_match(ident, sku, per_core_w) -> None:
    power = lookup_cpu_power(ident)
    assert (power.match, power.sku, power.per_core_w) == ("model-name", sku, per_core_w)


def test_model_name_beats_family_model() -> None:
    # a Genoa family/model but a Milan name: the name wins
    power = lookup_cpu_power(CpuIdentity("AMD EPYC 7763", "AuthenticAMD", 25, 17))
    assert power.sku == "AMD EPYC 7763"


@pytest.mark.parametrize(
    "ident",
    [
        CpuIdentity("Mystery CPU", "unknown"),
        CpuIdentity("AMD EPYC 95540", "AuthenticAMD", 25, 99),  # no SKU 9554 (word boundary)
        CpuIdentity("Intel pretending", "GenuineIntel", 25, 17),  # family/model of another vendor
    ],
)
def test_unknown_cpu_gets_generic_default(ident) -> None:
    power = lookup_cpu_power(ident)
    assert (power.match, power.sku, power.tdp_w, power.per_core_w) == (
        "generic-default",
        None,
        None,
        4.0,
    )
    assert "CodeCarbon" in power.source


def test_table_is_well_formed() -> None:
    table = load_table()
    pairs = []
    for entry in table["skus"]:
        assert entry["tdp_w"] > 0 and entry["cores"] > 0 and entry["source"]
        re.compile(entry["name_regex"])
        pairs += [tuple(p) for p in entry["representative_for"]]
    assert len(pairs) == len(set(pairs)), "a family/model pair must name one SKU"
    assert table["dram_w_per_gb"]["value"] == 0.375
