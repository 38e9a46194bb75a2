"""The AWS emulator for the deploy suite: ``scripts/aws-emulator start`` once per module (it
installs LocalStack's pinned venv on first use and bootstraps the CDK), ``stop`` after it, even
when a test failed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulatorkit import LOCK_WAIT_S, SCRIPT, Emulator, parse_exports
from repo import REPO_ROOT


def _script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    env = dict(os.environ)
    env.setdefault("SLIMSERVE_CACHE_DIR", str(REPO_ROOT / ".cache"))
    env["AWS_EMULATOR_LOCK_WAIT_S"] = str(LOCK_WAIT_S)
    started = _script("start", env)
    try:
        if started.returncode != 0:
            pytest.fail(f"scripts/aws-emulator start failed:\n{started.stderr[-4000:]}")
        exports = parse_exports(started.stdout)
        # stdout is only export/unset lines: what `eval "$(scripts/aws-emulator start)"` runs.
        assert all(line.startswith(("export ", "unset ")) for line in started.stdout.splitlines())
        environment = {k: v for k, v in {**env, **exports}.items() if v}
        # Full template validation runs in the template tests; here it only costs time.
        environment["CDK_VALIDATION"] = "false"
        yield Emulator(environment)
    finally:
        run = Path(env["SLIMSERVE_CACHE_DIR"]) / "aws-emulator-run"
        pids = [int(p.name) for p in (run / "functions").glob("*")] if (run / "functions").is_dir() else []
        if (run / "pid").is_file():
            pids.append(int((run / "pid").read_text()))
        stopped = _script("stop", env)
        assert stopped.returncode == 0, stopped.stderr
        assert not [pid for pid in pids if _alive(pid)], "processes left running after stop"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

