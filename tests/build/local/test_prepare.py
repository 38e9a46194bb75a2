"""How a local run prepares the function (build/local/prepare.py): only the zip, the runtime
client and the standard library importable, a Lambda-like environment and read-only task root,
clear startup failures, and the labelled emulation when the zip's Python is missing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from slimserve.build.errors import FunctionStartError
from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.python import find_python
from slimserve.build.local.run import LocalServer, running

from localkit import (
    ARCH,
    CACHE_DIR,
    LOCAL_PYTHON,
    console_text,
    fixture_source,
    make_build_dir,
    quiet_console,
)

# --- isolation and the Lambda environment ---------------------------------------------------


def test_only_the_zip_and_the_standard_library_are_importable(client: httpx.Client) -> None:
    # rich and httpx are installed where slimserve runs, but not in the zip.
    for module in ("rich", "httpx", "numpy"):
        answer = client.get("/import", params={"m": module}).json()
        assert answer["imported"] is False, module
        assert answer["error"].startswith("ModuleNotFoundError")
    assert client.get("/import", params={"m": "json"}).json()["imported"] is True
    # Lambda's runtime provides awslambdaric itself.
    assert client.get("/import", params={"m": "awslambdaric"}).json()["imported"] is True


def test_environment_looks_like_lambda(client: httpx.Client, probe: LocalServer) -> None:
    info = client.get("/environment").json()
    env = info["environ"]
    assert info["python"] == LOCAL_PYTHON
    assert env["LAMBDA_TASK_ROOT"] == info["cwd"]
    assert info["sys_path"][0] == info["cwd"]
    assert env["AWS_REGION"] == "us-east-1"
    assert env["TZ"] == ":UTC"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "probe" == info["function_name"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024" == info["memory_limit_in_mb"]
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert not any(name.startswith("AWS_ACCESS_KEY") or name == "AWS_SESSION_TOKEN" for name in env)
    assert "VIRTUAL_ENV" not in env
    assert info["tmp_writable"] is True
    assert 0 < info["remaining_ms"] <= 2000  # the manifest's 2 s timeout
    assert info["invoked_function_arn"].endswith(":function:probe")
    assert info["trace_id"].startswith("Root=1-")
    assert probe.emulated is False


def test_task_root_is_read_only(client: httpx.Client) -> None:
    answer = client.get("/write-task-root").json()
    assert answer["bits"] == 0  # no write permission on the task root or the code in it
    if os.geteuid() != 0:  # root ignores permissions; everybody else is refused, as on Lambda
        assert answer == {"written": False, "error": "PermissionError", "bits": 0}


# --- startup failures ---------------------------------------------------------------------------


def test_missing_dependency_fails_startup_with_the_import_error(
    tmp_path: Path, cache_dir: Path
) -> None:
    build = make_build_dir(tmp_path, {"app.py": fixture_source("missing_dependency_app.py")})
    started = time.monotonic()
    with (
        pytest.raises(FunctionStartError) as failure,
        running(build, LocalRunOptions(cache_dir=cache_dir), console=quiet_console()),
    ):
        pass
    assert time.monotonic() - started < 20  # a clear failure, not a hang
    assert failure.value.error_type == "Runtime.ImportModuleError"
    assert "No module named 'numpy'" in str(failure.value)
    assert "Unable to import module 'app'" in str(failure.value)


def test_files_lambda_could_not_read_are_reported(tmp_path: Path, cache_dir: Path) -> None:
    build = make_build_dir(
        tmp_path, {"app.py": "def handler(e, c):\n    return {}\n", "data.txt": "x"}, mode=0o600
    )
    console = quiet_console()
    with running(build, LocalRunOptions(cache_dir=cache_dir), console=console) as server:
        assert httpx.get(server.url + "/", timeout=30).status_code == 200  # fine for the owner
    assert "2 entries of the zip are not world-readable (app.py, data.txt)" in console_text(console)


def test_unknown_handler_fails_startup(tmp_path: Path, cache_dir: Path) -> None:
    build = make_build_dir(tmp_path, {"app.py": "x = 1\n"}, handler="app.nope")
    with (
        pytest.raises(FunctionStartError) as failure,
        running(build, LocalRunOptions(cache_dir=cache_dir), console=quiet_console()),
    ):
        pass
    assert failure.value.error_type == "Runtime.HandlerNotFound"


# --- emulation and other Pythons -----------------------------------------------------------------


FAKE_SIX = "raise ImportError('the bundled copy was built for another Python')\n"
SIX_METADATA = "Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n\nsix\n"
SIX_RECORD = "six.py,,\nsix-1.17.0.dist-info/METADATA,,\nsix-1.17.0.dist-info/RECORD,,\n"


def test_missing_target_python_falls_back_to_a_labelled_emulation(
    tmp_path: Path, cache_dir: Path
) -> None:
    build = make_build_dir(
        tmp_path,
        {
            "app.py": fixture_source("needs_six_app.py"),
            "six.py": FAKE_SIX,
            "six-1.17.0.dist-info/METADATA": SIX_METADATA,
            "six-1.17.0.dist-info/RECORD": SIX_RECORD,
        },
        python="3.99",
    )
    console = quiet_console()
    with running(build, LocalRunOptions(cache_dir=cache_dir), console=console) as server:
        assert server.emulated is True
        answer = httpx.get(server.url + "/", timeout=30).json()
    assert answer["six_version"] == "1.17.0"
    assert str(cache_dir / "emulation") in answer["six_file"]
    output = console_text(console)
    assert "EMULATION" in output
    assert "Python 3.99, not found on this machine" in output


@pytest.mark.skipif(find_python("3.12") is None, reason="no Python 3.12 on this machine")
def test_lambdas_default_python_3_12_runs_as_built(tmp_path: Path) -> None:
    # Cross-version install: pip of this interpreter fetches the 3.12 runtime client wheels.
    build = make_build_dir(
        tmp_path, {"app.py": fixture_source("probe_app.py")}, python="3.12", architecture=ARCH
    )
    with running(build, LocalRunOptions(cache_dir=CACHE_DIR), console=quiet_console()) as server:
        assert server.emulated is False
        info = httpx.get(server.url + "/environment", timeout=30).json()
    assert info["python"] == "3.12"
    assert info["environ"]["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
