"""Sizes as slimserve writes them: binary units, written KiB, MiB and GiB (1 MiB = 1,048,576
bytes). AWS's limits are binary too (Lambda's 50 MB direct upload is 52,428,800 bytes, API
Gateway's 10 MB body 10,485,760), so they are written in MiB as well. One convention for the
CLI, report.md, BENCHMARKS.md and the documentation (tests/docs/test_units.py holds them to it).

This module imports nothing from slimserve, so any module may import it.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


def format_bytes(size: float, digits: int = 1) -> str:
    """``size`` bytes in the largest binary unit it fills: "31.0 KiB", "30.1 MiB", "2.40 GiB"."""
    if size >= GIB:
        return f"{size / GIB:.{digits + 1}f} GiB"
    if size >= MIB:
        return f"{size / MIB:.{digits}f} MiB"
    return f"{size / KIB:.{digits}f} KiB"


def mib(size: float) -> str:
    """A limit or a size to compare with one, always in MiB: "50 MiB", "4.5 MiB"."""
    return f"{size / MIB:g} MiB"
