"""Task roots and work folders of local runs.

- ``shared_task_root``: lambda.zip unpacked once per content digest under
  ``<cache>/task-roots``, read-only like Lambda's /var/task, shared by the runs of that zip and
  pruned when old zips pile up (never while a live run uses it);
- ``new_work_dir``: a private folder per run under ``<cache>/local-runs`` (the per-environment
  TMPDIR, an emulation's private task root); folders of runs that died are removed;
- ``strip_bundled_packages``: the emulation's surgery on a private task root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import time
import zipfile
from pathlib import Path

from rich.console import Console

from slimserve.build.local.python import bundled_distributions

_RUNS_DIR = "local-runs"
_OWNER_FILE = "owner.pid"
_TASK_ROOT_FILE = "task-root"


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


def shared_task_root(cache_dir: Path, zip_path: Path, work_dir: Path, console: Console) -> Path:
    """The zip unpacked once per content digest under ``<cache>/task-roots`` and shared,
    read-only, by every run of that zip (a 100 MB bundle takes seconds to unpack). The run in
    ``work_dir`` records its claim, so no other run prunes the folder while it is in use."""
    digest = hashlib.sha256()
    with zip_path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    roots = cache_dir / "task-roots"
    root = roots / digest.hexdigest()[:24]
    (work_dir / _TASK_ROOT_FILE).write_text(str(root))
    if root.is_dir():
        os.utime(root)  # most recently used: kept by the pruning below
        console.print(f"task root for {zip_path} (unchanged zip): {root}")
        return root
    roots.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=roots))
    try:
        files, size = unpack_zip(zip_path, staging)
        set_read_only(staging)
        try:
            staging.rename(root)  # atomic: a task root is complete or absent
        except OSError:
            if not root.is_dir():
                raise
    finally:
        if staging.exists():
            remove_tree(staging)
    console.print(f"unpacked {zip_path} ({files} files, {size / 1e6:.1f} MB) into {root}")
    _prune_task_roots(roots, keep=root)
    return root


def _prune_task_roots(roots: Path, *, keep: Path, newest: int = 4, idle_s: float = 600) -> None:
    """Drop task roots of old zips (each rebuild makes one): all but the ``newest`` few, except
    those a live run uses; the idle time covers a run that is about to claim one."""
    candidates = sorted(
        (p for p in roots.iterdir() if p.is_dir() and p != keep and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    in_use = _task_roots_in_use(roots.parent / _RUNS_DIR)
    now = time.time()
    for folder in candidates[newest - 1 :]:
        if now - folder.stat().st_mtime > idle_s and folder not in in_use:
            remove_tree(folder)


def _task_roots_in_use(runs: Path) -> set[Path]:
    """Task roots of runs whose process is alive (a server may run for days)."""
    used: set[Path] = set()
    if not runs.is_dir():
        return used
    for folder in runs.iterdir():
        try:
            owner = int((folder / _OWNER_FILE).read_text())
            task_root = Path((folder / _TASK_ROOT_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _process_alive(owner):
            used.add(task_root)
    return used


def new_work_dir(cache_dir: Path, name: str) -> Path:
    """A private folder for one run under ``<cache>/local-runs``. The cache sits beside the
    project, and creating the zip's thousands of files there can be far quicker than in a
    system temp folder that is watched or on a slow filesystem. Folders of runs whose process
    is gone (killed hard) are removed first."""
    runs = cache_dir / _RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    for folder in runs.iterdir():
        try:
            owner = int((folder / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not _process_alive(owner):
            remove_tree(folder)
    work_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=runs))
    (work_dir / _OWNER_FILE).write_text(str(os.getpid()))
    return work_dir


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
