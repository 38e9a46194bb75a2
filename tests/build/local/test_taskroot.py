"""Task roots and work folders (build/local/taskroot.py) stay bounded: the live runs of one zip
share one task root, a run removes what it made when it ends (Ctrl-C and SIGTERM included), and
what a run killed hard left behind goes with the next run."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from slimserve.build.errors import FunctionStartError
from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.run import running
from slimserve.build.local.taskroot import (
    close_work_dir,
    new_work_dir,
    set_read_only,
    shared_task_root,
)

from localkit import (
    make_build_dir,
    own_cache,
    quiet_console,
    run_leftovers,
    write_lambda_zip,
)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(child.stdout)


def test_two_claims_share_one_root_that_goes_with_the_last(tmp_path: Path) -> None:
    zip_path = write_lambda_zip(tmp_path / "lambda.zip", {"app.py": "x = 1\n"})
    cache = tmp_path / "cache"
    first, second = new_work_dir(cache, "probe"), new_work_dir(cache, "probe")
    root = shared_task_root(cache, zip_path, first, quiet_console())
    console = quiet_console()
    assert shared_task_root(cache, zip_path, second, console) == root
    assert "shared with a live run of this zip" in console.file.getvalue()
    assert (root / "app.py").read_text() == "x = 1\n"
    close_work_dir(first)
    assert root.is_dir()  # the second run still uses it
    close_work_dir(second)
    assert not root.exists()
    assert run_leftovers(cache) == []


def test_leftovers_of_runs_killed_hard_are_removed_but_never_what_a_live_run_uses(
    tmp_path: Path,
) -> None:
    roots, runs = tmp_path / "task-roots", tmp_path / "local-runs"
    for name in ("root0", "root1", "root2"):
        (roots / name / "pkg").mkdir(parents=True)
        (roots / name / "pkg" / "code.py").write_text("x = 1\n")
        set_read_only(roots / name)  # as task roots are
    (roots / ".staging-abc").mkdir()  # unpacking cut short
    live = runs / f"{os.getpid()}-probe-live"
    live.mkdir(parents=True)
    (live / "task-root").write_text("root0")
    dead = runs / f"{dead_pid()}-probe-dead"
    dead.mkdir()
    (dead / "task-root").write_text("root1")
    (runs / "without-an-owner").mkdir()

    work = new_work_dir(tmp_path, "next")

    assert work.parent == runs and work.name.startswith(f"{os.getpid()}-next-")
    assert run_leftovers(tmp_path) == sorted(
        [f"local-runs/{live.name}", f"local-runs/{work.name}", "task-roots/root0"]
    )


def test_runs_of_one_zip_share_a_task_root_and_leave_nothing(
    probe_build: Path, tmp_path: Path
) -> None:
    cache = own_cache(tmp_path / "cache")
    options = LocalRunOptions(cache_dir=cache)
    with running(probe_build, options, console=quiet_console()) as first:
        root = first.function.prepared.spec.task_root
        with running(probe_build, options, console=quiet_console()) as second:
            assert second.function.prepared.spec.task_root == root
            assert len([p for p in run_leftovers(cache) if p.startswith("task-roots/")]) == 1
        assert root.is_dir()
        assert len([p for p in run_leftovers(cache) if p.startswith("local-runs/")]) == 1
    assert not root.exists()
    assert run_leftovers(cache) == []


def test_a_failed_start_leaves_nothing(tmp_path: Path) -> None:
    build = make_build_dir(tmp_path / "build", {"app.py": "x = 1\n"}, handler="app.nope")
    cache = own_cache(tmp_path / "cache")
    with (
        pytest.raises(FunctionStartError),
        running(build, LocalRunOptions(cache_dir=cache), console=quiet_console()),
    ):
        pass
    assert run_leftovers(cache) == []


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_slimserve_local_cleans_up_when_stopped(
    stop: signal.Signals, probe_build: Path, tmp_path: Path
) -> None:
    cache = own_cache(tmp_path / "cache")
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    env = {**os.environ, "SLIMSERVE_CACHE_DIR": str(cache), "TMPDIR": str(system_tmp)}
    command = [sys.executable, "-m", "slimserve.build.cli", "local", str(probe_build)]
    process = subprocess.Popen(
        [*command, "--port", "0", "--no-template"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    stderr = process.stderr
    assert stderr is not None
    threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True).start()
    output: list[str] = []
    try:
        while not any("press Ctrl-C to stop" in line for line in output):
            output.append(lines.get(timeout=60))
        assert len(run_leftovers(cache)) == 2  # its task root and its work folder
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    while not lines.empty():
        output.append(lines.get())
    assert "stopped" in "".join(output)
    assert run_leftovers(cache) == []
    assert list(system_tmp.iterdir()) == []
