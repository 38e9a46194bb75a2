"""This machine's description: CPU model, the int8 instruction sets, cores and memory, read from
/proc files given here (so the answers do not depend on the CPU running the tests)."""

from __future__ import annotations

from pathlib import Path

from slimserve.build.machine import (
    INT8_INSTRUCTION_SETS,
    cpu_info,
    describe_int8_flags,
    has_int8_dot_product,
    load_average,
    memory_total_bytes,
)

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse2 avx2 amx_int8 avx512f avx512_vnni amx_tile amx_bf16 avx512_bf16
"""
EPYC = """processor\t: 0
model name\t: AMD EPYC 7R13 Processor
flags\t\t: fpu sse2 avx avx2 fma
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp i8mm bf16
"""


def test_the_instruction_sets_onnxruntime_int8_dispatches_on_are_read_in_a_fixed_order(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(XEON)
    info = cpu_info(cpuinfo)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8488C"
    assert info["int8_flags"] == ["avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"]
    assert info["logical_cores"] >= 1 and 1 <= info["usable_cores"] <= info["logical_cores"]
    assert has_int8_dot_product(info["int8_flags"])

    cpuinfo.write_text(EPYC)
    epyc = cpu_info(cpuinfo)
    assert epyc["model"] == "AMD EPYC 7R13 Processor" and epyc["int8_flags"] == ["avx2"]
    assert not has_int8_dot_product(epyc["int8_flags"])

    cpuinfo.write_text(GRAVITON)  # arm64 names its extensions "Features" and gives no model name
    graviton = cpu_info(cpuinfo)
    assert graviton["int8_flags"] == ["asimddp", "i8mm"] and has_int8_dot_product(graviton["int8_flags"])


def test_no_cpuinfo_means_no_flags_said_plainly(tmp_path: Path) -> None:
    info = cpu_info(tmp_path / "missing")
    assert info["int8_flags"] == [] and info["model"]
    assert describe_int8_flags([]) == "none of " + "/".join(INT8_INSTRUCTION_SETS)
    assert describe_int8_flags(["avx2", "avx512f"]) == "avx2, avx512f"


def test_memory_and_load(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree:         1000 kB\n")
    assert memory_total_bytes(meminfo) == 16384000 * 1024
    assert memory_total_bytes(tmp_path / "missing") is None
    meminfo.write_text("MemTotal: lots\n")
    assert memory_total_bytes(meminfo) is None
    average = load_average()
    assert average is None or (len(average) == 3 and all(value >= 0 for value in average))
