"""This machine, as far as model speed is concerned: the CPU model, its cores, the instruction
sets onnxruntime's int8 kernels choose between, memory and load.

Shared by the benchmark (every speed figure it records carries the instruction sets it was
measured under) and the compression search (which times candidates on the build machine).
Linux reads /proc; elsewhere the CPU model falls back to ``platform`` and no flags are known.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# The instruction sets onnxruntime's int8 MatMul/Conv kernels dispatch on, as /proc/cpuinfo
# names them. x86: AVX2 alone multiplies u8 x s8 into 16-bit sums that can saturate; AVX512F
# widens that; AVX512-VNNI / AVX-VNNI (vpdpbusd) and AMX (tiles) accumulate in 32 bits and are
# where int8 pays most. arm64: the dot-product (asimddp) and int8 matrix-multiply (i8mm)
# extensions play the part of VNNI. The same int8 model can differ in speed, and in its
# integer results, between hosts that differ here.
INT8_INSTRUCTION_SETS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "asimddp", "i8mm")

# Those that accumulate int8 products without 16-bit saturation (VNNI, AMX, arm64 dot products).
INT8_DOT_PRODUCT_SETS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"})

_CPUINFO = Path("/proc/cpuinfo")
_MEMINFO = Path("/proc/meminfo")


def usable_cores() -> int:
    """Cores this process may run on (affinity and cgroups respected where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_info(cpuinfo: Path = _CPUINFO) -> dict[str, Any]:
    """The CPU: ``model``, ``int8_flags`` (the ones of INT8_INSTRUCTION_SETS it reports, in that
    order), ``logical_cores``, ``usable_cores`` and ``machine`` (platform.machine())."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "model": model,
        "int8_flags": [flag for flag in INT8_INSTRUCTION_SETS if flag in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "machine": platform.machine(),
    }


def has_int8_dot_product(int8_flags: list[str]) -> bool:
    """Whether the CPU accumulates int8 products in 32 bits (VNNI, AMX, arm64 dot products)."""
    return any(flag in INT8_DOT_PRODUCT_SETS for flag in int8_flags)


def describe_int8_flags(int8_flags: list[str]) -> str:
    """``"avx2, avx512f, avx512_vnni"``, or what is missing when the CPU reports none of them."""
    return ", ".join(int8_flags) if int8_flags else "none of " + "/".join(INT8_INSTRUCTION_SETS)


def memory_total_bytes(meminfo: Path = _MEMINFO) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> list[float] | None:
    """The 1/5/15-minute load average (a shared machine's noise), where the OS reports it."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None
