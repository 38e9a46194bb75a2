"""The builds the suite measures: built when missing or made from another version of the
handler, copied aside so every section measures one consistent build, and described (hashes,
age, whether the handler in the zip is this code's)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from slimserve.build.bench.common import Example
from slimserve.build.paths import HANDLER_IMPORT, HANDLER_PACKAGE, WORK_DIR, ZIP_FILE


@contextmanager
def _scratch_cwd() -> Iterator[None]:
    """onnxruntime's symbolic shape inference may drop a model-sized temp file into the working
    directory during a build: keep it out of the repository."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="slimserve-bench-build-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(previous)


def stale_handler_files(zip_path: Path) -> list[str]:
    """Files of the handler package that differ between this checkout and lambda.zip (the zip
    was built from other code: its cold-start and load numbers would not be this code's)."""
    prefix = HANDLER_IMPORT.replace(".", "/") + "/"
    with zipfile.ZipFile(zip_path) as archive:
        packed = {
            name[len(prefix) :]: archive.read(name)
            for name in archive.namelist()
            if name.startswith(prefix) and not name.endswith("/") and "__pycache__" not in name and not name.endswith(".pyc")
        }
    local = {
        path.relative_to(HANDLER_PACKAGE).as_posix(): path.read_bytes()
        for path in HANDLER_PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    return sorted(name for name in set(packed) | set(local) if packed.get(name) != local.get(name))


def prepare_example(folder: Path, dist: Path | None, console: Console, *, rebuild_stale: bool = True) -> Example:
    """The example's build output (default: where `slimserve build` puts it), built when
    lambda.zip (or the fp32 export) is missing, or when the zip's handler differs from this
    checkout's (unless ``rebuild_stale`` is False)."""
    from slimserve.build.config import load_config
    from slimserve.build.pipeline.progress import Steps
    from slimserve.build.pipeline.run import default_out, run_build

    folder = folder.resolve()
    config = load_config(folder)
    dist = (dist or default_out(config)).resolve()
    reason = None
    if not (dist / ZIP_FILE).is_file() or not (dist / WORK_DIR / "fp32.onnx").is_file():
        reason = f"no {ZIP_FILE} yet"
    elif rebuild_stale:
        stale = stale_handler_files(dist / ZIP_FILE)
        if stale:
            reason = f"its {ZIP_FILE} holds another version of handler/{', handler/'.join(stale[:3])}"
    if reason is not None:
        console.print(f"[bold]building[/bold] {folder} -> {dist} ({reason})")
        with _scratch_cwd():
            run_build(folder, out=dist, steps=Steps(console))
    return Example(folder=folder, dist=dist)


def snapshot_build(example: Example, root: Path) -> Example:
    """A private copy of the build output (top-level files and work/fp32.onnx): everything the
    suite measures comes from one consistent build even if dist/<name> is rebuilt meanwhile."""
    target = root / example.dist.name
    if target.exists():
        shutil.rmtree(target)
    (target / WORK_DIR).mkdir(parents=True)
    for path in example.dist.iterdir():
        if path.is_file():
            shutil.copy2(path, target / path.name)
    if example.fp32_path.is_file():
        shutil.copy2(example.fp32_path, target / WORK_DIR / example.fp32_path.name)
    return Example(folder=example.folder, dist=target)


def build_provenance(example: Example) -> dict[str, Any]:
    """What was measured: the build's files, hashes and whether its handler is this checkout's."""
    from slimserve.build.pipeline.bundle import sha256_file

    stale = stale_handler_files(example.zip_path)
    return {
        "zip_sha256": sha256_file(example.zip_path),
        "model_sha256": example.manifest.model.sha256,
        "zip_built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(example.zip_path.stat().st_mtime)),
        "handler_matches_checkout": not stale,
        "handler_files_differing": stale,
    }
