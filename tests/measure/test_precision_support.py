import pytest

from wattlm.measure.cpu_power import CpuIdentity
from wattlm.measure.precision_support import emulated_precision, emulated_precision_warning

ZEN3 = CpuIdentity("AMD EPYC 7B13", "AuthenticAMD", 25, 1, flags=("sse2", "avx2", "fma"))
ZEN4 = CpuIdentity("AMD EPYC 9B14", "AuthenticAMD", 25, 17, flags=("avx2", "avx512_bf16"))
SPR = CpuIdentity("Intel Xeon", "GenuineIntel", 6, 143, flags=("avx2", "amx_bf16", "amx_tile"))
GRAVITON = CpuIdentity("Neoverse-V1", "ARM", None, None, flags=("bf16", "sve"))


@pytest.mark.parametrize(
    ("cpu", "precision", "expected"),
    [
        (ZEN3, "bf16", "bfloat16"),
        (ZEN3, "bfloat16", "bfloat16"),
        (ZEN3, "fp16", "float16"),
        (ZEN3, "fp32", None),
        (ZEN3, "float32", None),
        (ZEN4, "bf16", None),
        (ZEN4, "float16", "float16"),
        (SPR, "bf16", None),
        (GRAVITON, "bf16", None),
    ],
)
def test_emulated_precision_follows_the_cpu_flags(cpu, precision, expected):
    assert emulated_precision(precision, cpu=cpu) == expected


def test_cuda_is_never_flagged_by_cpu_flags():
    assert emulated_precision("bf16", device="cuda:0", cpu=ZEN3) is None


def test_warning_names_the_cpu_the_missing_instructions_and_the_way_out():
    line = emulated_precision_warning("bf16", cpu=ZEN3)
    assert line is not None and "\n" not in line
    assert "AMD EPYC 7B13" in line and "AVX-512 BF16 or AMX" in line
    assert "20x slower" in line and line.endswith("use float32")
    assert emulated_precision_warning("bf16", cpu=ZEN4) is None
