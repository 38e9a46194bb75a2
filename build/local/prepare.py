"""From a built lambda.zip to started execution environments.

The zip is unpacked into a read-only task root (build/local/taskroot.py, shared by the live runs
of the same zip); the handler runs in a separate interpreter started with ``-S`` so that only
the zip, the runtime interface client (``awslambdaric``, which Lambda provides and the zip must
not carry) and the standard library are importable (build/local/function.py).

When the zip's target Python (or architecture, or Linux itself) is not available here, the zip
cannot be run as built. Then the zip's packages are reinstalled for a local Python and the run
is labelled EMULATION everywhere: it checks the handler, not the bundle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.console import console_log, emulation_panel
from slimserve.build.local.function import FunctionPool, FunctionSpec
from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.python import (
    RUNTIME_CLIENT_REQUIREMENT,
    PythonInterpreter,
    current_python,
    ensure_emulation_packages,
    ensure_runtime_client,
    find_python,
    resolve_python,
)
from slimserve.build.local.taskroot import (
    close_work_dir,
    handler_top_level,
    new_work_dir,
    set_read_only,
    shared_task_root,
    strip_bundled_packages,
    unpack_zip,
    warn_about_permissions,
)
from slimserve.build.units import format_bytes
from slimserve.handler.manifest import Manifest


@dataclass(frozen=True)
class PreparedFunction:
    spec: FunctionSpec
    interpreter: PythonInterpreter
    emulated: bool
    emulation_reason: str = ""


def _choose_interpreter(manifest: Manifest, python: str | None) -> tuple[PythonInterpreter, str]:
    """Returns (interpreter, reason it cannot run the zip as built or "")."""
    target_python = manifest.runtime.python
    target_arch = manifest.runtime.architecture
    if python is not None:
        interpreter = resolve_python(python)
    else:
        interpreter = find_python(target_python) or current_python()
    if interpreter.runs_lambda_wheels(target_python, target_arch):
        return interpreter, ""
    if interpreter.version != target_python:
        reason = f"the zip targets Python {target_python}, not found on this machine"
        if python is not None:
            reason = f"the zip targets Python {target_python}; --python gave {interpreter.version}"
    elif interpreter.system != "Linux":
        reason = f"the zip holds Linux binaries and this machine runs {interpreter.system}"
    else:
        reason = (
            f"the zip targets {target_arch} and this machine is {interpreter.lambda_architecture}"
        )
    return interpreter, reason


def _emulation_task_root(
    zip_path: Path,
    manifest: Manifest,
    work_dir: Path,
    interpreter: PythonInterpreter,
    reason: str,
    cache_dir: Path,
    console: Console,
) -> tuple[Path, Path]:
    """(private task root without the zip's packages, folder of their local reinstall)."""
    # A private copy: the zip's own packages get removed from it below.
    task_root = work_dir / "task"
    task_root.mkdir(parents=True)
    files, size = unpack_zip(zip_path, task_root)
    console.print(f"unpacked {zip_path} ({files} files, {format_bytes(size)}) into {task_root}")
    requirements = strip_bundled_packages(task_root, manifest.runtime.handler)
    # soft_wrap=False: a panel must wrap its text, or it is cut at the border.
    console.print(emulation_panel(reason, interpreter, len(requirements)), soft_wrap=False)
    own = {handler_top_level(manifest.runtime.handler), "model"}
    if not requirements and any(
        path.is_dir() and path.name not in own and not path.name.startswith(("_", "."))
        for path in task_root.iterdir()
    ):
        console.print(
            "[yellow]no *.dist-info folders in the zip: its dependency list cannot be "
            "recovered, so its third-party packages are not reinstalled and will fail to "
            "import[/yellow]"
        )
    with console.status(
        f"installing {len(requirements)} packages for Python {interpreter.version} (emulation)"
    ):
        packages, installed_now = ensure_emulation_packages(cache_dir, interpreter, requirements)
    if requirements:
        console.print(
            f"emulation packages {'installed' if installed_now else 'cached'} in {packages}"
        )
    set_read_only(task_root)
    return task_root, packages


def prepare_function(
    zip_path: Path,
    manifest: Manifest,
    work_dir: Path,
    *,
    config: GatewayConfig,
    python: str | None,
    cache_dir: Path,
    console: Console,
) -> PreparedFunction:
    warn_about_permissions(zip_path, console)
    interpreter, emulation_reason = _choose_interpreter(manifest, python)
    emulated = bool(emulation_reason)
    if emulated:
        task_root, packages = _emulation_task_root(
            zip_path, manifest, work_dir, interpreter, emulation_reason, cache_dir, console
        )
        import_path = [task_root, packages]
    else:
        task_root = shared_task_root(cache_dir, zip_path, work_dir, console)
        import_path = [task_root]

    runtime_python = interpreter.version
    runtime_arch = interpreter.lambda_architecture if emulated else manifest.runtime.architecture
    with console.status(
        f"installing {RUNTIME_CLIENT_REQUIREMENT} for Python {runtime_python}/{runtime_arch} (once)"
    ):
        runtime_dir, installed_now = ensure_runtime_client(
            cache_dir, runtime_python, runtime_arch, compile_with=interpreter
        )
    console.print(
        f"runtime client {RUNTIME_CLIENT_REQUIREMENT} for Python {runtime_python}/{runtime_arch}: "
        f"{'installed into' if installed_now else 'cached in'} {runtime_dir}"
    )
    import_path.append(runtime_dir)

    tmp_root = work_dir / "tmp"
    tmp_root.mkdir()
    spec = FunctionSpec(
        name=manifest.name,
        handler=manifest.runtime.handler,
        python=interpreter.executable,
        python_version=interpreter.version,
        task_root=task_root,
        import_path=tuple(import_path),
        memory_mb=config.memory_mb,
        timeout_s=config.function_timeout_s,
        environment=config.environment,
        tmp_root=tmp_root,
    )
    return PreparedFunction(spec, interpreter, emulated, emulation_reason)


@dataclass
class LocalFunction:
    """A prepared, started function pool plus the folder it lives in."""

    prepared: PreparedFunction
    pool: FunctionPool
    work_dir: Path
    init_ms: float


@contextmanager
def started_function(
    zip_path: Path,
    manifest: Manifest,
    config: GatewayConfig,
    options: LocalRunOptions,
    console: Console,
) -> Iterator[LocalFunction]:
    """Unpack, prepare and initialise the function (``options``: python, concurrency, init
    timeout, cache); on exit, stop it and remove every folder the run made (its task root too,
    unless another live run of the same zip uses it)."""
    cache_dir = options.cache()
    work_dir = new_work_dir(cache_dir, manifest.name)
    pool: FunctionPool | None = None
    try:
        prepared = prepare_function(
            zip_path,
            manifest,
            work_dir,
            config=config,
            python=options.python,
            cache_dir=cache_dir,
            console=console,
        )
        console.print(
            f"starting {' '.join(prepared.spec.command())} (cwd = task root, "
            f"{config.memory_mb} MiB, timeout {config.function_timeout_s:g} s)"
        )
        log = console_log(console)
        pool = FunctionPool(prepared.spec, concurrency=options.concurrency, log=log)
        init_ms = pool.start(options.init_timeout_s)
        yield LocalFunction(prepared, pool, work_dir, init_ms)
    finally:
        if pool is not None:
            pool.close()
        close_work_dir(work_dir)
