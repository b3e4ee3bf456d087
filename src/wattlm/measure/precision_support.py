"""Does this CPU compute a low precision natively, or emulate it?

bf16 and fp16 matmuls are fast on a CPU only with the instructions for them (AVX-512 BF16
or AMX for bf16; AVX-512 FP16 or AMX-FP16 for fp16). Without them PyTorch converts to
float32 and back around every operation, and a bf16 run is *slower* than float32: on an
AVX2-only AMD EPYC (Zen 3), a MiniLM fine-tune at batch 16 took 17 s per step under bf16
autocast against 0.86 s in float32 (20×). Which choice is cheaper depends on the machine,
so wattlm checks the flags instead of shipping one default.

Example:
    >>> from wattlm.measure.cpu_power import CpuIdentity
    >>> zen3 = CpuIdentity("AMD EPYC 7B13", "AuthenticAMD", 25, 1, flags=("avx2",))
    >>> emulated_precision("bf16", cpu=zen3)
    'bfloat16'
    >>> print(emulated_precision("float32", cpu=zen3))
    None
"""

from __future__ import annotations

from wattlm.measure.cpu_power import CpuIdentity, read_cpu_identity

__all__ = ["NATIVE_FLAGS", "emulated_precision", "emulated_precision_warning"]

# The CPU flags (as /proc/cpuinfo spells them) under which a precision runs natively.
NATIVE_FLAGS: dict[str, tuple[str, ...]] = {
    "bfloat16": ("avx512_bf16", "amx_bf16"),
    "float16": ("avx512_fp16", "amx_fp16"),
}
_INSTRUCTIONS = {"bfloat16": "AVX-512 BF16 or AMX", "float16": "AVX-512 FP16 or AMX-FP16"}
_X86_VENDORS = ("GenuineIntel", "AuthenticAMD")
_ALIASES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16"}
_MEASURED = "measured: 20x slower per training step than float32 on an AVX2-only AMD EPYC (Zen 3)"


def emulated_precision(
    precision: str, *, device: str = "cpu", cpu: CpuIdentity | None = None
) -> str | None:
    """The canonical name of ``precision`` when this CPU only emulates it, else ``None``.

    ``None`` also for float32, for other devices (CUDA has its own rules) and for CPUs that
    are not x86 (their flags say nothing about bf16 here).

    Example:
        >>> from wattlm.measure.cpu_power import CpuIdentity
        >>> spr = CpuIdentity("Intel Xeon", "GenuineIntel", 6, 143, flags=("avx512_bf16",))
        >>> print(emulated_precision("bf16", cpu=spr), emulated_precision("fp16", cpu=spr))
        None float16
    """
    name = _ALIASES.get(precision)
    if name is None or not device.startswith("cpu"):
        return None
    cpu = cpu or read_cpu_identity()
    if cpu.vendor not in _X86_VENDORS:
        return None  # not an x86 CPU: its flags say nothing about these instructions
    return None if any(f in cpu.flags for f in NATIVE_FLAGS[name]) else name


def emulated_precision_warning(
    precision: str, *, device: str = "cpu", cpu: CpuIdentity | None = None
) -> str | None:
    """One line to show before a run that asks for a precision this CPU only emulates.

    Example:
        >>> from wattlm.measure.cpu_power import CpuIdentity
        >>> zen3 = CpuIdentity("AMD EPYC 7B13", "AuthenticAMD", 25, 1, flags=("avx2",))
        >>> print(emulated_precision_warning("bf16", cpu=zen3))  # doctest: +ELLIPSIS
        warning: AMD EPYC 7B13 has no AVX-512 BF16 or AMX: bfloat16 is emulated ... use float32
    """
    cpu = cpu or read_cpu_identity()
    name = emulated_precision(precision, device=device, cpu=cpu)
    if name is None:
        return None
    return (
        f"warning: {cpu.model_name} has no {_INSTRUCTIONS[name]}: {name} is emulated and runs slower "
        f"than float32 ({_MEASURED}); use float32"
    )
