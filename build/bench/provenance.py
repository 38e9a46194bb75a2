"""Where the numbers come from: the machine, the software and the commit of a run
(``results["machine"]``), and the host record every timed section carries, so a speed figure
copied out of results.json still says which instruction sets it was measured under."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from typing import Any

from slimserve.build.machine import cpu_info, load_average, memory_total_bytes
from slimserve.build.paths import checkout_root

# The sections whose figures are times or rates: they hold only for the host they ran on.
TIMED_SECTIONS = ("speed", "warm", "cold_start", "load", "json_vs_binary", "explain")

_PACKAGES = ("onnxruntime", "torch", "numpy", "mangum", "fastapi", "tokenizers", "awslambdaric")


def _version_of(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """git's answer about the slimserve checkout the suite runs from; None for an installed copy
    (whose site-packages may sit inside some other repository)."""
    root = checkout_root()
    if root is None:
        return None
    try:
        completed = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip()


def machine_description(target_python: str | None = None) -> dict[str, Any]:
    """The machine and software the numbers come from."""
    status = _git("status", "--porcelain")
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "memory_total_bytes": memory_total_bytes(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "target_python": target_python,
        "packages": {name: _version_of(name) for name in _PACKAGES},
        "git": {
            "commit": _git("rev-parse", "HEAD"),
            "uncommitted_changes": None if status is None else len([line for line in status.splitlines() if line]),
        },
        "load_average_at_start": load_average(),
    }


def host_record(machine: dict[str, Any]) -> dict[str, Any]:
    """What a timed section records as its ``machine``: the CPU and its int8 instruction sets."""
    cpu = machine.get("cpu") or {}
    return {"cpu": cpu.get("model"), "architecture": cpu.get("machine"), "int8_flags": list(cpu.get("int8_flags") or [])}
