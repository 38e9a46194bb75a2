"""`slimserve local` / `invoke` end to end: real zips, real awslambdaric, real sockets.

The runtime client is pip-installed once into the project's .cache/ (needs PyPI the first time,
then it is reused). Servers are shared per module where tests do not disturb each other.
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import sys
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from slimserve.build.errors import FunctionError, FunctionStartError, LocalRunError
from slimserve.build.local.apigw.gateway import GatewayConfig
from slimserve.build.local.python import current_python, ensure_runtime_client, find_python
from slimserve.build.local.run import LocalServer, invoke_event, resolve_target, running

from repo import REPO_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
EVENTS = REPO_ROOT / "tests" / "events"
CACHE_DIR = REPO_ROOT / ".cache"
LOCAL_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
ARCH = current_python().lambda_architecture


# --- reusable helpers (also for the digits end-to-end test) --------------------------------------


def write_lambda_zip(zip_path: Path, files: Mapping[str, str | bytes], mode: int = 0o644) -> Path:
    """A zip like the build writes: world-readable entries (Lambda runs as another user)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return zip_path


def make_build_dir(
    folder: Path,
    files: Mapping[str, str | bytes],
    *,
    name: str = "probe",
    handler: str = "app.handler",
    python: str = LOCAL_PYTHON,
    architecture: str = ARCH,
    timeout_s: int = 20,
    memory_mb: int = 1024,
    mode: int = 0o644,
) -> Path:
    """A build output folder (lambda.zip + manifest.json) around ``files``."""
    write_lambda_zip(folder / "lambda.zip", files, mode)
    manifest = {
        "schema": 1,
        "name": name,
        "model": {"file": "model.onnx", "sha256": "0" * 64, "bytes": 0},
        "inputs": [],
        "outputs": [],
        "runtime": {
            "python": python,
            "architecture": architecture,
            "handler": handler,
            "timeout_s": timeout_s,
            "memory_mb": memory_mb,
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def fixture_source(name: str) -> str:
    return (FIXTURES / name).read_text()


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=200, soft_wrap=True)


def console_text(console: Console) -> str:
    """What was printed, with panel borders and line wrapping undone."""
    assert isinstance(console.file, io.StringIO)
    return " ".join(console.file.getvalue().replace("│", " ").split())


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    # Installs the runtime client for this Python once (PyPI on the first run only).
    ensure_runtime_client(CACHE_DIR, LOCAL_PYTHON, ARCH, compile_with=current_python())
    return CACHE_DIR


@pytest.fixture(scope="module")
def probe_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_build_dir(
        tmp_path_factory.mktemp("probe"), {"app.py": fixture_source("probe_app.py")}, timeout_s=2
    )


@pytest.fixture(scope="module")
def probe(probe_build: Path, cache_dir: Path) -> Iterator[LocalServer]:
    # AWS credentials in the developer's shell must never reach the function.
    os.environ["AWS_ACCESS_KEY_ID"] = "AKIASHOULDNOTLEAK"
    try:
        with running(probe_build, cache_dir=cache_dir, console=quiet_console()) as server:
            yield server
    finally:
        del os.environ["AWS_ACCESS_KEY_ID"]


@pytest.fixture(scope="module")
def client(probe: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=probe.url, timeout=30) as http:
        yield http


def function_pid(client: httpx.Client) -> int:
    return client.get("/environment").json()["pid"]


# --- the event the handler receives ----------------------------------------------------------


def test_get_request_becomes_a_payload_2_event(client: httpx.Client) -> None:
    before_ms = time.time() * 1000
    response = client.get(
        "/items/echo?a=1&a=2&b=x%20y",
        headers=[("X-Custom", "one"), ("X-Custom", "two"), ("User-Agent", "probe/1")],
        cookies={"c1": "v1", "c2": "v2"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["apigw-requestid"]
    event = response.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/items/echo"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert sorted(event["cookies"]) == ["c1=v1", "c2=v2"]
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-custom"] == "one,two"
    assert "cookie" not in headers
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-amzn-trace-id"].startswith("Root=1-")
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/items/echo",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe/1",
    }
    assert context["stage"] == "$default"
    assert context["requestId"] == response.headers["apigw-requestid"]
    assert before_ms - 1000 <= context["timeEpoch"] <= time.time() * 1000 + 1000
    assert event["isBase64Encoded"] is False
    assert "body" not in event and "pathParameters" not in event


def test_json_body_is_text_and_other_bodies_are_base64(client: httpx.Client) -> None:
    event = client.post("/echo", json={"x": [1, 2]}).json()
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"x": [1, 2]}
    assert event["requestContext"]["http"]["method"] == "POST"

    form = client.post("/echo", data={"a": "1"}).json()  # HTTP API treats forms as binary
    assert form["isBase64Encoded"] is True
    assert base64.b64decode(form["body"]) == b"a=1"


def test_binary_body_round_trips_through_base64(client: httpx.Client) -> None:
    payload = bytes(range(256)) * 64
    response = client.post(
        "/binary", content=payload, headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == payload


def test_chunked_request_body_is_reassembled(client: httpx.Client) -> None:
    chunks = iter([b"ab", b"cd", b"ef"])  # an iterator makes httpx send Transfer-Encoding: chunked
    event = client.post("/echo", content=chunks, headers={"content-type": "text/plain"}).json()
    assert event["body"] == "abcdef"
    assert "transfer-encoding" not in event["headers"]  # the gateway buffered the body
    assert event["headers"]["content-length"] == "6"


def test_cookies_and_headers_come_back(client: httpx.Client) -> None:
    response = client.get("/cookies")
    assert response.status_code == 201
    assert response.headers["x-answer"] == "42"
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_result_without_status_code_is_a_200_json_body(client: httpx.Client) -> None:
    response = client.get("/plain")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"hello": "world"}


def test_malformed_result_is_a_502(client: httpx.Client) -> None:
    response = client.get("/invalid")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}


def test_head_request_has_no_body(client: httpx.Client) -> None:
    response = client.head("/plain")
    assert response.status_code == 200
    assert response.content == b""


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


# --- failures ---------------------------------------------------------------------------------


def test_handler_exception_is_a_502_and_the_environment_stays_warm(client: httpx.Client) -> None:
    pid = function_pid(client)
    response = client.get("/raise")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}
    assert function_pid(client) == pid


def test_crash_is_a_502_and_the_next_request_gets_a_fresh_process(client: httpx.Client) -> None:
    pid = function_pid(client)
    response = client.get("/crash")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}
    assert client.get("/plain").status_code == 200
    assert function_pid(client) != pid


def test_function_timeout_is_a_502_and_the_environment_is_replaced(client: httpx.Client) -> None:
    pid = function_pid(client)
    started = time.monotonic()
    response = client.get("/sleep", params={"s": "5"})
    elapsed = time.monotonic() - started
    assert response.status_code == 502
    assert 1.9 <= elapsed < 4.5  # the manifest's 2 s function timeout, not the 5 s sleep
    assert client.get("/plain").status_code == 200
    assert function_pid(client) != pid


def test_body_over_10_mb_is_rejected_by_the_gateway(client: httpx.Client) -> None:
    response = client.post(
        "/echo", content=b"x" * (10 * 1024 * 1024 + 1), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}


def test_event_over_lambdas_6_mb_is_rejected(client: httpx.Client) -> None:
    # 5 MB of binary is under the gateway's 10 MB, but base64 makes the event 6.7 MB.
    response = client.post(
        "/echo", content=b"\x00" * (5 * 1024 * 1024), headers={"content-type": "image/png"}
    )
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}
    assert client.get("/plain").status_code == 200


def test_response_over_6_mb_is_a_502_and_the_next_request_works(client: httpx.Client) -> None:
    response = client.get("/big", params={"n": str(7 * 1024 * 1024)})
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}
    below_limit = client.get("/big", params={"n": str(5 * 1024 * 1024)})
    assert below_limit.status_code == 200
    assert len(below_limit.json()["data"]) == 5 * 1024 * 1024


def test_concurrency_runs_requests_in_separate_environments(
    probe_build: Path, cache_dir: Path
) -> None:
    with running(probe_build, cache_dir=cache_dir, console=quiet_console(), concurrency=2) as s:
        results: list[httpx.Response] = []

        def sleep_once() -> None:
            results.append(httpx.get(f"{s.url}/sleep", params={"s": "0.8"}, timeout=10))

        started = time.monotonic()
        threads = [threading.Thread(target=sleep_once) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        pids = {instance.pid for instance in s.function.pool.instances}
    assert [r.status_code for r in results] == [200, 200]
    assert elapsed < 1.5  # side by side, not one after the other
    assert len(pids) == 2


def test_integration_timeout_is_a_503(probe_build: Path, cache_dir: Path) -> None:
    config = GatewayConfig(integration_timeout_s=0.5, function_timeout_s=5)
    with running(probe_build, config=config, cache_dir=cache_dir, console=quiet_console()) as s:
        started = time.monotonic()
        response = httpx.get(f"{s.url}/sleep", params={"s": "1.2"}, timeout=10)
        assert time.monotonic() - started < 1.1
        assert response.status_code == 503
        assert response.json() == {"message": "Service Unavailable"}


def test_missing_dependency_fails_startup_with_the_import_error(
    tmp_path: Path, cache_dir: Path
) -> None:
    build = make_build_dir(tmp_path, {"app.py": fixture_source("missing_dependency_app.py")})
    started = time.monotonic()
    with (
        pytest.raises(FunctionStartError) as failure,
        running(build, cache_dir=cache_dir, console=quiet_console()),
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
    with running(build, cache_dir=cache_dir, console=console) as server:
        assert httpx.get(server.url + "/", timeout=30).status_code == 200  # fine for the owner
    assert "2 entries of the zip are not world-readable (app.py, data.txt)" in console_text(console)


def test_unknown_handler_fails_startup(tmp_path: Path, cache_dir: Path) -> None:
    build = make_build_dir(tmp_path, {"app.py": "x = 1\n"}, handler="app.nope")
    with (
        pytest.raises(FunctionStartError) as failure,
        running(build, cache_dir=cache_dir, console=quiet_console()),
    ):
        pass
    assert failure.value.error_type == "Runtime.HandlerNotFound"


def test_busy_port_fails_before_the_function_starts(probe: LocalServer, probe_build: Path) -> None:
    port = int(probe.url.rsplit(":", 1)[1])
    started = time.monotonic()
    with (
        pytest.raises(LocalRunError, match=f"cannot listen on 127.0.0.1:{port}"),
        running(probe_build, port, cache_dir=CACHE_DIR, console=quiet_console()),
    ):
        pass
    assert time.monotonic() - started < 1


# --- gateway shapes other than the default ------------------------------------------------------


def test_rest_api_with_a_stage_sends_payload_1_events(probe_build: Path, cache_dir: Path) -> None:
    from slimserve.build.local.apigw.gateway import Route

    config = GatewayConfig(
        api_type="rest",
        payload_format="1.0",
        stage="prod",
        routes=(Route("ANY", "/"), Route("ANY", "/{proxy+}")),
        integration_timeout_s=29,
        function_timeout_s=5,
        binary_media_types=("image/png",),
    )
    with running(probe_build, config=config, cache_dir=cache_dir, console=quiet_console()) as s:
        assert s.url.endswith("/prod")
        with httpx.Client(base_url=s.url, timeout=30) as http:
            event = http.get("/items/echo?a=1&a=2", headers={"X-Mixed-Case": "v"}).json()
            assert event["resource"] == "/{proxy+}"
            assert event["path"] == "/items/echo"
            assert event["requestContext"]["path"] == "/prod/items/echo"
            assert event["pathParameters"] == {"proxy": "items/echo"}
            assert event["queryStringParameters"] == {"a": "2"}
            assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
            assert event["headers"]["X-Mixed-Case"] == "v"
            assert "version" not in event
            outside = httpx.get(s.url.removesuffix("/prod") + "/items", timeout=10)
            assert outside.status_code == 403
            assert outside.json() == {"message": "Missing Authentication Token"}
            failing = http.get("/raise")
            assert failing.status_code == 502
            assert failing.json() == {"message": "Internal server error"}


# --- targets, invoke_event, emulation ---------------------------------------------------------


def test_project_folder_needs_a_build_and_finds_it_in_its_own_dist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = tmp_path / "examples" / "demo"
    example.mkdir(parents=True)
    (example / "slimserve.toml").write_text('name = "demo"\n')
    with pytest.raises(LocalRunError, match=r"slimserve build"):
        resolve_target(example)
    make_build_dir(example / "dist" / "demo", {"app.py": "def handler(e, c): return 1\n"})
    # A build in the current folder's dist/ is not the project's: the cwd never matters.
    make_build_dir(tmp_path / "dist" / "demo", {"app.py": "def handler(e, c): return 2\n"})
    monkeypatch.chdir(tmp_path)
    artifacts = resolve_target(example)
    assert artifacts.zip_path == (example / "dist" / "demo" / "lambda.zip").resolve()
    assert artifacts.manifest.name == "probe"


def test_neither_build_nor_example_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalRunError, match="neither a build output folder"):
        resolve_target(tmp_path)


def test_invoke_event_sends_a_recorded_event(probe_build: Path, cache_dir: Path) -> None:
    event = json.loads((EVENTS / "http-api-v2.json").read_text())
    event["rawPath"] = "/echo"
    result = invoke_event(probe_build, event, cache_dir=cache_dir, console=quiet_console())
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == event

    event["rawPath"] = "/raise"
    with pytest.raises(FunctionError) as failure:
        invoke_event(probe_build, event, cache_dir=cache_dir, console=quiet_console())
    assert failure.value.document["errorType"] == "ValueError"
    assert failure.value.document["errorMessage"] == "boom from the handler"


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
    with running(build, cache_dir=cache_dir, console=console) as server:
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
    with running(build, cache_dir=CACHE_DIR, console=quiet_console()) as server:
        assert server.emulated is False
        info = httpx.get(server.url + "/environment", timeout=30).json()
    assert info["python"] == "3.12"
    assert info["environ"]["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"


@pytest.mark.slow
def test_digits_build_serves_inference(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("slimserve.build.pipeline.run", reason="the build pipeline is not there yet")
    digits_build: Path = request.getfixturevalue("digits_build")
    event = json.loads((EVENTS / "infer-digits.json").read_text())
    with running(digits_build, cache_dir=CACHE_DIR, console=quiet_console()) as server:
        path = event["rawPath"]
        response = httpx.post(
            server.url + path,
            content=event["body"],
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["outputs"]
        # explain under the real runtime client: the Lambda context's remaining time bounds it,
        # and the predicted class's logit is base + sum of the pixel attributions.
        explained = httpx.post(server.url + path.replace("/infer", "/explain"), content=event["body"],
                               headers={"content-type": "application/json"}, timeout=30)
        assert explained.status_code == 200, explained.text
        outputs = {output["name"]: output["data"] for output in explained.json()["outputs"]}
        logit = max(outputs["logits"])
        assert abs(outputs["base_value"][0] + sum(outputs["attributions"]) - logit) < 1e-3
    result = invoke_event(digits_build, event, cache_dir=CACHE_DIR, console=quiet_console())
    assert result["statusCode"] == 200, result
    assert json.loads(result["body"])["outputs"]


def test_old_task_roots_are_pruned_but_never_one_in_use(tmp_path: Path) -> None:
    from slimserve.build.local import taskroot as local_taskroot

    roots = tmp_path / "task-roots"
    old = time.time() - 3600
    folders = []
    for index in range(7):
        folder = roots / f"root{index}"
        folder.mkdir(parents=True)
        os.utime(folder, (old + index, old + index))
        folders.append(folder)
    # A live run (this process) uses the oldest one.
    run = tmp_path / "local-runs" / "run"
    run.mkdir(parents=True)
    (run / "owner.pid").write_text(str(os.getpid()))
    (run / "task-root").write_text(str(folders[0]))
    keep = roots / "current"
    keep.mkdir()

    local_taskroot._prune_task_roots(roots, keep=keep, newest=4)

    remaining = sorted(p.name for p in roots.iterdir())
    assert remaining == ["current", "root0", "root4", "root5", "root6"]
