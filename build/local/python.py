"""Interpreters and installed packages for running lambda.zip locally.

- ``find_python("3.12")`` finds a working CPython 3.12 on this machine (PATH, then pyenv and uv
  install folders), checking each candidate by running it: pyenv shims are on PATH even when
  they refuse to run.
- ``ensure_runtime_client`` installs what Lambda's Python runtime provides and the zip does
  not (``awslambdaric`` and its dependencies) for the target Python/architecture, once, under
  the project's cache folder.
- ``ensure_emulation_packages`` reinstalls the zip's third-party packages for another Python
  when the target one is missing; ``bundled_distributions`` recovers that list from the
  ``*.dist-info`` folders in the zip.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from slimserve.build.errors import LocalPythonError

# Lambda's managed runtime ships this client; pinned like the project's own dependency.
RUNTIME_CLIENT_REQUIREMENT = "awslambdaric==4.2.2"
# ...and boto3 (the S3 model store downloads with it), so the emulated runtime has it too.
RUNTIME_PROVIDED_REQUIREMENTS = [RUNTIME_CLIENT_REQUIREMENT, "boto3==1.40.4"]
_STAMP = ".slimserve-installed.json"

# manylinux tags Lambda's images satisfy. Python 3.12+ runs on Amazon Linux 2023 (glibc 2.34);
# older runtimes on Amazon Linux 2 (glibc 2.26).
_GLIBC_BY_PYTHON = {"3.9": (2, 26), "3.10": (2, 26), "3.11": (2, 26)}
_DEFAULT_GLIBC = (2, 34)
_MACHINE_BY_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class PythonInterpreter:
    executable: Path
    version: str  # "3.12"
    machine: str  # "x86_64" | "aarch64" | "arm64" (macOS)
    system: str  # "Linux" | "Darwin" | "Windows"

    @property
    def lambda_architecture(self) -> str:
        return "arm64" if self.machine in ("aarch64", "arm64") else self.machine

    def runs_lambda_wheels(self, python: str, architecture: str) -> bool:
        """Can this interpreter load a zip built for Lambda's (python, architecture)?"""
        return (
            self.system == "Linux"
            and self.version == python
            and self.lambda_architecture == architecture
        )


# Prints the real executable too: a pyenv shim that works under our environment may not work
# under the function's minimal one, the binary behind it does.
_PROBE = (
    "import platform, sys; "
    "print(sys.implementation.name, '%d.%d' % sys.version_info[:2], "
    "platform.machine(), platform.system()); print(sys.executable)"
)


@cache
def probe_python(executable: str) -> PythonInterpreter | None:
    """Run a candidate interpreter; None when it does not run or is not CPython."""
    try:
        completed = subprocess.run(
            [executable, "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = completed.stdout.splitlines()
    parts = lines[0].split() if lines else []
    if completed.returncode != 0 or len(lines) != 2 or len(parts) != 4 or parts[0] != "cpython":
        return None
    real_executable = Path(lines[1].strip() or executable)
    return PythonInterpreter(real_executable, parts[1], parts[2], parts[3])


def _version_dirs(root: Path, pattern: str) -> list[Path]:
    if not root.is_dir():
        return []

    # Newest patch release first: "3.12.10" before "3.12.9".
    def patch_key(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.name))

    return sorted(root.glob(pattern), key=patch_key, reverse=True)


def python_candidates(version: str) -> list[Path]:
    """Where a ``pythonX.Y`` may live, most preferred first (duplicates removed)."""
    name = f"python{version}"
    found: list[Path] = []
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        found.append(Path(sys.executable))
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for folder in _version_dirs(pyenv_root / "versions", f"{version}.*"):
        found.append(folder / "bin" / name)
    uv_root = Path(
        os.environ.get("UV_PYTHON_INSTALL_DIR") or Path.home() / ".local/share/uv/python"
    )
    for folder in _version_dirs(uv_root, f"cpython-{version}.*"):
        found.append(folder / "bin" / name)
    for folder in ("/usr/local/bin", "/usr/bin", "/opt/homebrew/bin"):
        found.append(Path(folder) / name)
    unique: list[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def find_python(version: str) -> PythonInterpreter | None:
    for candidate in python_candidates(version):
        if not candidate.exists():
            continue
        interpreter = probe_python(str(candidate))
        if interpreter is not None and interpreter.version == version:
            return interpreter
    return None


def current_python() -> PythonInterpreter:
    """The interpreter running slimserve: always there, so the emulation fallback."""
    interpreter = probe_python(sys.executable)
    if interpreter is None:  # pragma: no cover - we are running in it
        raise LocalPythonError(f"cannot run {sys.executable}")
    return interpreter


def resolve_python(spec: str) -> PythonInterpreter:
    """``spec`` is a version ("3.12") or a path to an interpreter."""
    if re.fullmatch(r"\d+\.\d+", spec):
        interpreter = find_python(spec)
        if interpreter is None:
            raise LocalPythonError(f"no working python{spec} found on this machine")
        return interpreter
    interpreter = probe_python(str(Path(spec).expanduser()))
    if interpreter is None:
        raise LocalPythonError(f"{spec} is not a working CPython interpreter")
    return interpreter


# --- installing packages -------------------------------------------------------------------


def manylinux_platforms(python: str, architecture: str) -> list[str]:
    machine = _MACHINE_BY_ARCH[architecture]
    major, minor = _GLIBC_BY_PYTHON.get(python, _DEFAULT_GLIBC)
    tags = [f"manylinux2014_{machine}"]
    tags += [f"manylinux_2_{m}_{machine}" for m in range(17, minor + 1)]
    assert major == 2
    return tags


def _pip_target_command(
    target: Path,
    requirements: Sequence[str],
    *,
    python: str,
    platforms: Sequence[str],
    no_deps: bool,
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python,
        "--no-compile",  # .pyc made by this Python would be dead weight for the target one
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]
    for tag in platforms:
        command += ["--platform", tag]
    if no_deps:
        command.append("--no-deps")
    return command + list(requirements)


def _installed(folder: Path, stamp: dict[str, object]) -> bool:
    try:
        return json.loads((folder / _STAMP).read_text()) == stamp
    except (OSError, json.JSONDecodeError):
        return False


def _install_once(
    folder: Path,
    stamp: dict[str, object],
    command_for: Callable[[Path], list[str]],
    compile_with: PythonInterpreter | None,
) -> bool:
    """Install into ``folder`` unless an identical install is there. True when it installed.

    Installs into a sibling temp folder and renames it into place, so an interrupted install or
    two test workers installing at once never leave a half-filled folder behind.
    """
    if _installed(folder, stamp):
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        completed = subprocess.run(
            command_for(staging), capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise LocalPythonError(
                "pip could not install packages for the local run:\n"
                + (completed.stderr or completed.stdout).strip()[-3000:]
            )
        if compile_with is not None:
            # Lambda's runtime ships bytecode; compile with the interpreter that will import it.
            subprocess.run(
                [str(compile_with.executable), "-S", "-m", "compileall", "-q", str(staging)],
                capture_output=True,
                check=False,  # bytecode only speeds imports up; the source is still there
            )
        (staging / _STAMP).write_text(json.dumps(stamp))
        if _installed(folder, stamp):
            return False  # another process finished the same install meanwhile: keep theirs
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # stale: other requirements
        try:
            staging.rename(folder)
        except OSError:
            if not _installed(folder, stamp):  # lost a race to an identical install: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def runtime_client_folder(cache_dir: Path, python: str, architecture: str) -> Path:
    return cache_dir / "runtime" / f"{python}-{architecture}"


def ensure_runtime_client(
    cache_dir: Path,
    python: str,
    architecture: str,
    *,
    compile_with: PythonInterpreter | None = None,
) -> tuple[Path, bool]:
    """Install ``awslambdaric`` for (python, architecture) under the cache. Returns (folder,
    installed_now)."""
    if architecture not in _MACHINE_BY_ARCH:
        raise LocalPythonError(f"unknown architecture {architecture!r}")
    folder = runtime_client_folder(cache_dir, python, architecture)
    local_system = platform.system()
    if local_system == "Linux":
        platforms = manylinux_platforms(python, architecture)
    else:
        platforms = []  # pip picks this machine's platform (emulation on macOS / Windows)
    stamp = {"requirements": RUNTIME_PROVIDED_REQUIREMENTS, "platforms": platforms}

    def command_for(target: Path) -> list[str]:
        return _pip_target_command(
            target, RUNTIME_PROVIDED_REQUIREMENTS, python=python, platforms=platforms, no_deps=False
        )

    return folder, _install_once(folder, stamp, command_for, compile_with)


# --- what the zip carries ------------------------------------------------------------------


@dataclass(frozen=True)
class BundledDistribution:
    name: str
    version: str
    dist_info: str  # folder name inside the zip
    top_level_entries: frozenset[str]  # files/folders at the zip root that belong to it

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def _metadata_field(metadata: str, field_name: str) -> str | None:
    for line in metadata.splitlines():
        if not line.strip():
            break  # headers end at the first blank line
        key, _, value = line.partition(":")
        if key.strip().lower() == field_name.lower():
            return value.strip()
    return None


def bundled_distributions(task_root: Path) -> list[BundledDistribution]:
    """Third-party packages installed at the task root, read from their ``*.dist-info``."""
    found: list[BundledDistribution] = []
    for dist_info in sorted(task_root.glob("*.dist-info")):
        metadata_file = dist_info / "METADATA"
        if not metadata_file.is_file():
            continue
        metadata = metadata_file.read_text(encoding="utf-8", errors="replace")
        name = _metadata_field(metadata, "Name")
        version = _metadata_field(metadata, "Version")
        if not name or not version:
            continue
        entries: set[str] = {dist_info.name}
        record = dist_info / "RECORD"
        if record.is_file():
            for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
                path = line.split(",", 1)[0].strip()
                if path and not path.startswith(("..", "/")):
                    entries.add(path.split("/", 1)[0])
        top_level = dist_info / "top_level.txt"
        if top_level.is_file():
            entries.update(n.strip() for n in top_level.read_text().splitlines() if n.strip())
        found.append(BundledDistribution(name, version, dist_info.name, frozenset(entries)))
    return found


def emulation_folder(
    cache_dir: Path, interpreter: PythonInterpreter, requirements: Iterable[str]
) -> Path:
    digest = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:16]
    return (
        cache_dir
        / "emulation"
        / f"{interpreter.version}-{interpreter.lambda_architecture}-{digest}"
    )


def ensure_emulation_packages(
    cache_dir: Path, interpreter: PythonInterpreter, requirements: Sequence[str]
) -> tuple[Path, bool]:
    """Install the zip's exact package versions for the local interpreter (no dependency
    resolution: the zip's set is already complete, and may be trimmed on purpose)."""
    folder = emulation_folder(cache_dir, interpreter, requirements)
    stamp = {"requirements": sorted(requirements), "python": interpreter.version}

    def command_for(target: Path) -> list[str]:
        return _pip_target_command(
            target, sorted(requirements), python=interpreter.version, platforms=[], no_deps=True
        )

    if not requirements:
        folder.mkdir(parents=True, exist_ok=True)
        return folder, False
    return folder, _install_once(folder, stamp, command_for, interpreter)
