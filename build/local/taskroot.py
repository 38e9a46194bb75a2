"""Task roots and work folders of local runs; nothing outlives the runs that use it.

- ``new_work_dir``: a private folder per run, ``<cache>/local-runs/<pid>-<name>-<random>`` (the
  per-environment TMPDIR, an emulation's private task root, the run's claim on a task root);
- ``shared_task_root``: lambda.zip unpacked once per content digest under
  ``<cache>/task-roots``, read-only like Lambda's /var/task, shared by the live runs of that zip;
- ``close_work_dir``: removes the run's folder, and its task root unless another live run uses
  it. A run killed hard (SIGKILL) leaves both behind; the next run removes every work folder
  whose process is gone and every task root no live run claims;
- ``strip_bundled_packages``: the emulation's surgery on a private task root.

Claims, unpacking and removals happen under one file lock (``<cache>/task-roots/.lock``), so a
task root never disappears between another run's claim and its use, nor is unpacked twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from filelock import FileLock
from rich.console import Console

from slimserve.build.local.python import bundled_distributions
from slimserve.build.units import format_bytes

_RUNS_DIR = "local-runs"
_ROOTS_DIR = "task-roots"
_LOCK_FILE = ".lock"
_TASK_ROOT_FILE = "task-root"  # in a work folder: the name of the task root the run uses


def unpack_zip(zip_path: Path, destination: Path) -> tuple[int, int]:
    """Extract like Lambda does (file modes kept). Returns (files, bytes)."""
    files = size = 0
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            # ZipFile.extract drops "..", drive letters and leading "/" (no zip-slip).
            extracted = Path(archive.extract(info, destination))
            mode = (info.external_attr >> 16) & 0o777
            if not info.is_dir():
                files += 1
                size += info.file_size
                if mode:
                    extracted.chmod(mode | stat.S_IRUSR)
    return files, size


def not_world_readable(zip_path: Path) -> list[str]:
    """Entries Lambda cannot read: it runs the code as a user that does not own the files, so
    these fail there with "Permission denied" although they work for the local owner."""
    with zipfile.ZipFile(zip_path) as archive:
        return [
            info.filename
            for info in archive.infolist()
            if (mode := (info.external_attr >> 16) & 0o777) and not mode & stat.S_IROTH
        ]


def warn_about_permissions(zip_path: Path, console: Console) -> None:
    unreadable = not_world_readable(zip_path)
    if unreadable:
        shown = ", ".join(unreadable[:5])
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        console.print(
            f"[yellow]warning: {len(unreadable)} entries of the zip are not world-readable "
            f"({shown}{more}). Lambda runs the code as another user: they fail there with "
            "Permission denied.[/yellow]",
            highlight=False,
        )


def set_read_only(root: Path) -> None:
    """/var/task is read-only on Lambda; a handler that writes next to its code fails here too."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_symlink():
            continue
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    root.chmod(root.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def remove_tree(root: Path) -> None:
    """Delete a (read-only) task root or work folder: folders need their write bit back first."""
    if not root.exists():
        return
    for folder in [root, *root.rglob("*")]:
        if folder.is_dir() and not folder.is_symlink():
            try:
                folder.chmod(folder.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)
            except OSError:
                pass
    shutil.rmtree(root, ignore_errors=True)


def _lock(cache_dir: Path) -> FileLock:
    roots = cache_dir / _ROOTS_DIR
    roots.mkdir(parents=True, exist_ok=True)
    return FileLock(roots / _LOCK_FILE)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(work_dir: Path) -> int | None:
    """The process a work folder belongs to: its name starts with the pid, so a folder never
    exists without its owner known (no owner file to write after creating it)."""
    head = work_dir.name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _live_work_dirs(cache_dir: Path) -> list[Path]:
    runs = cache_dir / _RUNS_DIR
    if not runs.is_dir():
        return []
    return [
        folder
        for folder in runs.iterdir()
        if (owner := _owner(folder)) is not None and _process_alive(owner)
    ]


def _claimed_roots(cache_dir: Path) -> set[str]:
    """Names of the task roots live runs use (a server may run for days)."""
    claimed: set[str] = set()
    for folder in _live_work_dirs(cache_dir):
        try:
            claimed.add((folder / _TASK_ROOT_FILE).read_text())
        except OSError:
            continue  # an emulation, or a run that has not claimed one yet
    return claimed


def _remove_leftovers(cache_dir: Path) -> None:
    """Under the lock: work folders of runs whose process is gone (killed hard), task roots no
    live run claims, and half-unpacked ones (unpacking happens under the lock, so any staging
    folder seen here belongs to a run that died)."""
    runs = cache_dir / _RUNS_DIR
    live = set(_live_work_dirs(cache_dir))
    if runs.is_dir():
        for folder in runs.iterdir():
            if folder not in live:
                remove_tree(folder)
    claimed = _claimed_roots(cache_dir)
    for folder in (cache_dir / _ROOTS_DIR).iterdir():
        if folder.is_dir() and folder.name not in claimed:
            remove_tree(folder)


def new_work_dir(cache_dir: Path, name: str) -> Path:
    """A private folder for one run under ``<cache>/local-runs``; give it back with
    ``close_work_dir``. The cache sits beside the project, and creating the zip's thousands of
    files there can be far quicker than in a system temp folder that is watched or on a slow
    filesystem. Leftovers of runs that were killed hard are removed first."""
    with _lock(cache_dir):
        _remove_leftovers(cache_dir)
        runs = cache_dir / _RUNS_DIR
        runs.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{name}-", dir=runs))


def shared_task_root(cache_dir: Path, zip_path: Path, work_dir: Path, console: Console) -> Path:
    """The zip unpacked once per content digest under ``<cache>/task-roots`` and shared,
    read-only, by the live runs of that zip (a 100 MB bundle takes seconds to unpack). The run
    in ``work_dir`` (from ``new_work_dir``) records its claim: no other run removes the folder
    while it is in use, and ``close_work_dir`` removes it once no live run uses it."""
    digest = hashlib.sha256()
    with zip_path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    roots = cache_dir / _ROOTS_DIR
    root = roots / digest.hexdigest()[:24]
    with _lock(cache_dir):
        (work_dir / _TASK_ROOT_FILE).write_text(root.name)
        if root.is_dir():
            console.print(f"task root for {zip_path} (shared with a live run of this zip): {root}")
            return root
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=roots))
        try:
            files, size = unpack_zip(zip_path, staging)
            set_read_only(staging)
            staging.rename(root)  # a task root is complete or absent, even after a crash
        finally:
            if staging.exists():
                remove_tree(staging)
    console.print(f"unpacked {zip_path} ({files} files, {format_bytes(size)}) into {root}")
    return root


def close_work_dir(work_dir: Path) -> None:
    """Remove a run's folder (from ``new_work_dir``) and the task root it claimed, unless
    another live run claims that one too."""
    cache_dir = work_dir.parent.parent
    with _lock(cache_dir):
        try:
            claimed = (work_dir / _TASK_ROOT_FILE).read_text()
        except OSError:
            claimed = None
        remove_tree(work_dir)
        if claimed and claimed not in _claimed_roots(cache_dir):
            remove_tree(cache_dir / _ROOTS_DIR / claimed)


def handler_top_level(handler: str) -> str:
    return handler.rsplit(".", 1)[0].split(".", 1)[0].split("/", 1)[0]


def strip_bundled_packages(task_root: Path, handler: str) -> list[str]:
    """Emulation: remove the zip's third-party packages (built for another Python) so the
    reinstalled ones are imported instead. Returns their requirements (``name==version``)."""
    keep = {handler_top_level(handler), "model"}
    requirements: list[str] = []
    for distribution in bundled_distributions(task_root):
        requirements.append(distribution.requirement)
        for entry in distribution.top_level_entries - keep:
            path = task_root / entry
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    return requirements
