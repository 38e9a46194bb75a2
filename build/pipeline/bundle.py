"""Pack lambda.zip: handler package + model + runtime dependencies for the target platform.

Dependencies are installed with pip for the *target* Python and architecture (wheels only, no
Docker), stripped of what the handler never imports, optionally byte-compiled by the target
Python (Lambda's /var/task is read-only, so without shipped .pyc every cold start recompiles),
and zipped deterministically: same inputs, same bytes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from slimserve.build.errors import BundleError
from slimserve.build.paths import HANDLER_IMPORT, HANDLER_PACKAGE, cache_dir
from slimserve.build.units import format_bytes, mib

# Lambda's documented limits for zip deployments.
ZIP_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
UNZIPPED_LIMIT = 250 * 1024 * 1024

# Fixed timestamp for every zip entry (the zip format's epoch): reproducible bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# What the handler imports, by task. Versions are pinned to what this build environment runs,
# so the zip holds exactly the versions the tests exercised.
# FastAPI is not among them: it declares the API at build time only (see handler/app.py).
_BASE_REQUIREMENTS = ["onnxruntime", "numpy", "orjson", "mangum", "pydantic", "aws-lambda-powertools"]
_TASK_REQUIREMENTS = {"embedding": ["tokenizers"]}
# A model that takes texts (a text classifier) tokenizes in the handler whatever its task.
_TEXT_REQUIREMENTS = ["tokenizers"]
# Installed without their dependencies: tokenizers declares huggingface_hub (and through it
# httpx, yaml, tqdm, ...) for downloading from the hub, which the handler never does: 10 MB zipped.
_NO_DEPS = {"tokenizers"}

_PLATFORM_TAGS = {
    # Lambda runs Amazon Linux 2023 (glibc 2.34): any manylinux up to 2_34 loads.
    "x86_64": ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"],
    "arm64": ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"],
}

# Paths (relative to the dependency root) the handler never imports. Measured: these are most of
# onnxruntime's and numpy's weight; the Python binding does not link libonnxruntime.so
# (readelf -d shows no NEEDED entry for it), and the local runtime test imports the stripped tree.
_STRIP_PATHS = [
    "bin",
    "onnxruntime/transformers",
    "onnxruntime/tools",
    "onnxruntime/quantization",
    "onnxruntime/datasets",
    "onnxruntime/backend",
    "numpy/f2py",
    "numpy/_pyinstaller",
    "numpy/_core/include",
    "numpy/_core/lib/pkgconfig",
    # numpy submodules the handler never imports (numpy 2 loads them lazily, on attribute access).
    "numpy/random",
    "numpy/polynomial",
    "numpy/ma",
    "numpy/fft",
    "numpy/testing",
    "numpy/typing",
    "numpy/doc",
    # pydantic's v1 compatibility layer (only FastAPI's compat probe imports it; not shipped).
    "pydantic/v1",
    # onnxruntime declares protobuf and flatbuffers for its tools; inference imports neither.
    "google",
    "flatbuffers",
    # Powertools: the handler uses Logger and Metrics only (which import shared/, tracing/ and
    # utilities/jmespath_utils); the REST event handler and the other utilities are 3 MB more.
    "aws_lambda_powertools/event_handler",
    *(
        f"aws_lambda_powertools/utilities/{name}"
        for name in (
            "auth_alpha", "batch", "circuit_breaker", "data_classes", "data_masking", "feature_flags",
            "idempotency", "kafka", "parameters", "parser", "streaming", "validation",
        )
    ),
]
_STRIP_GLOBS = [
    "onnxruntime/capi/libonnxruntime.so*",
    "**/*.pyi",
    "numpy/_core/_simd.*",
    "numpy/_core/_*_tests.*",
]
_STRIP_DIR_NAMES = {"tests", "__pycache__"}


@dataclass(frozen=True)
class BundleReport:
    zip_path: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    python: str
    architecture: str
    precompiled: bool
    requirements: list[str]
    zip_sha256: str

    @property
    def fits_direct_upload(self) -> bool:
        return self.zipped_bytes <= ZIP_DIRECT_UPLOAD_LIMIT

    @property
    def fits_unzipped(self) -> bool:
        return self.unzipped_bytes <= UNZIPPED_LIMIT

    def summary(self) -> str:
        direct = "ok" if self.fits_direct_upload else "OVER: deploy uploads it through S3"
        unzipped = "ok" if self.fits_unzipped else "OVER: use the container-image option"
        return (
            f"lambda.zip: {format_bytes(self.zipped_bytes)} zipped (limit {mib(ZIP_DIRECT_UPLOAD_LIMIT)} for direct "
            f"upload: {direct}), {format_bytes(self.unzipped_bytes)} unzipped (limit {mib(UNZIPPED_LIMIT)}: {unzipped}), "
            f"{self.files} files, "
            f"Python {self.python} {self.architecture}, .pyc {'precompiled' if self.precompiled else 'not precompiled'}"
        )

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "fits_direct_upload": self.fits_direct_upload, "fits_unzipped": self.fits_unzipped}


def runtime_requirements(task: str, extra: Iterable[str] = (), text_input: bool = False) -> list[str]:
    pinned = []
    wanted = [*_BASE_REQUIREMENTS, *_TASK_REQUIREMENTS.get(task, []), *(_TEXT_REQUIREMENTS if text_input else [])]
    for name in dict.fromkeys(wanted):
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise BundleError(f"{name} is not installed in the build environment; run pip install -e '.[build]'") from None
    return [*pinned, *extra]


def find_python(version: str) -> str | None:
    """An interpreter for ``version`` (e.g. "3.12") on this machine, or None (the same search
    `slimserve local` uses: PATH, then pyenv and uv installs)."""
    from slimserve.build.local.python import find_python as find_interpreter

    found = find_interpreter(version)
    return str(found.executable) if found is not None else None


def install_dependencies(
    requirements: list[str], *, python: str, architecture: str, cache: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """pip-install ``requirements`` for the target into a cached folder, stripped; return it."""
    cache = cache or cache_dir()
    key = hashlib.sha256(
        json.dumps([requirements, python, architecture, _STRIP_PATHS, _STRIP_GLOBS, sorted(_NO_DEPS)]).encode()
    ).hexdigest()[:16]
    target = cache / "deps" / f"py{python}-{architecture}-{key}"
    if (target / ".complete").is_file():
        log(f"dependencies from cache {target}")
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    base = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(staging), "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python, "--no-compile",
        *(arg for tag in _PLATFORM_TAGS[architecture] for arg in ("--platform", tag)),
    ]
    with_deps = [r for r in requirements if _name_of(r) not in _NO_DEPS]
    without_deps = [r for r in requirements if _name_of(r) in _NO_DEPS]
    log(f"pip install for Python {python} {architecture}: {' '.join(requirements)}")
    env = {**os.environ, "PIP_CACHE_DIR": str(cache / "pip")}
    commands = [[*base, *with_deps]]
    if without_deps:
        commands.append([*base, "--no-deps", *without_deps])
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise BundleError(
                f"installing the runtime dependencies for Python {python} {architecture} failed "
                f"(is every package available as a wheel for that platform?):\n{result.stderr.strip()[-2000:]}"
            )
    strip_dependencies(staging)
    (staging / ".complete").write_text("\n".join(requirements) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _name_of(requirement: str) -> str:
    return requirement.split("==")[0].split(">=")[0].strip().lower()


def strip_dependencies(root: Path) -> None:
    for relative in _STRIP_PATHS:
        shutil.rmtree(root / relative, ignore_errors=True)
    for pattern in _STRIP_GLOBS:
        for path in root.glob(pattern):
            path.unlink()
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and path.name in _STRIP_DIR_NAMES:
            shutil.rmtree(path, ignore_errors=True)


def stage_bundle(staging: Path, *, dependencies: Path, model_files: dict[str, Path]) -> None:
    """Lay out the task root: dependencies, the handler package (.py only), model/ files."""
    shutil.copytree(dependencies, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
    shutil.copytree(
        HANDLER_PACKAGE, staging.joinpath(*HANDLER_IMPORT.split(".")), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True
    )
    model_dir = staging / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    for name, path in model_files.items():
        shutil.copyfile(path, model_dir / name)


def precompile(staging: Path, python_executable: str) -> None:
    """Byte-compile with the target Python. unchecked-hash .pyc embed no timestamps (the zip
    stays reproducible) and are used without stat-ing the source; paths are rewritten to
    /var/task so tracebacks on Lambda point at real files."""
    result = subprocess.run(
        [
            python_executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
            "-s", str(staging), "-p", "/var/task", str(staging),
        ],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise BundleError(f"byte-compiling the bundle failed:\n{(result.stdout + result.stderr)[-2000:]}")


def write_deterministic_zip(staging: Path, zip_path: Path) -> tuple[int, int, int]:
    """Zip ``staging`` with sorted entries, fixed timestamps and permissions.
    Returns (zipped bytes, unzipped bytes, files)."""
    files = sorted(path for path in staging.rglob("*") if path.is_file())
    unzipped = 0
    temporary = zip_path.with_suffix(".zip.partial")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            relative = path.relative_to(staging).as_posix()
            info = zipfile.ZipInfo(relative, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = path.stat().st_mode & stat.S_IXUSR
            # Lambda needs files readable by its sandbox user: 0644 / 0755.
            info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            data = path.read_bytes()
            unzipped += len(data)
            archive.writestr(info, data, compresslevel=9)
    temporary.replace(zip_path)
    return zip_path.stat().st_size, unzipped, len(files)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def build_zip(
    zip_path: Path,
    *,
    model_files: dict[str, Path],
    task: str,
    text_input: bool = False,
    python: str,
    architecture: str,
    extra_requirements: Iterable[str] = (),
    precompile_bytecode: bool = True,
    cache: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> BundleReport:
    requirements = runtime_requirements(task, extra_requirements, text_input)
    dependencies = install_dependencies(requirements, python=python, architecture=architecture, cache=cache, log=log)
    staging = zip_path.parent / ".lambda-staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        stage_bundle(staging, dependencies=dependencies, model_files=model_files)
        target_python = find_python(python) if precompile_bytecode else None
        if precompile_bytecode and target_python is None:
            log(f"Python {python} is not installed here: shipping sources only (slower cold start)")
        if target_python is not None:
            precompile(staging, target_python)
        zipped, unzipped, files = write_deterministic_zip(staging, zip_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BundleReport(
        zip_path=str(zip_path),
        zipped_bytes=zipped,
        unzipped_bytes=unzipped,
        files=files,
        python=python,
        architecture=architecture,
        precompiled=target_python is not None,
        requirements=requirements,
        zip_sha256=sha256_file(zip_path),
    )
