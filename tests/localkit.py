"""Helpers for the tests of build/local (``slimserve local`` / ``invoke``): build folders around
a few files, quiet consoles, the stack shapes the template tests synthesize, and a cache of
one's own that still reuses the checkout's runtime client."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import stat
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console

from slimserve.build.local.python import current_python, ensure_runtime_client
from slimserve.build.local.run import LocalServer

from repo import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "build" / "local" / "fixtures"
CACHE_DIR = REPO_ROOT / ".cache"
LOCAL_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
ARCH = current_python().lambda_architecture

JWT_OPTIONS = {"jwt_issuer": "https://issuer.example.com", "jwt_audience": ["digits-clients"]}
# Each stack shape slimserve deploys, with the options `slimserve synth` would get. rest-none
# also moves memory and timeout away from the manifest's, to show the template decides them.
STACKS: dict[str, dict[str, Any]] = {
    "http-iam": {},
    "http-jwt": {"auth": "jwt", **JWT_OPTIONS},
    "rest-api_key": {"api": "rest", "auth": "api_key"},
    "rest-none": {
        "api": "rest",
        "auth": "none",
        "allow_anonymous": True,  # infra refuses auth=none without both (issue 15)
        "reserved_concurrency": 2,
        "memory_mb": 2048,
        "timeout_s": 10,
    },
}
LOCAL_KEY = "local-test-key-0123456789abcdef"


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


def fake_jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token with these claims (the local gateway does not verify signatures)."""

    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def sigv4_headers(
    method: str, url: str, body: bytes, headers: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``headers`` plus a real SigV4 signature with made-up credentials (never sent to AWS), as
    build/deploy/remote.py signs its requests."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers=dict(headers or {"content-type": "application/json"}),
    )
    SigV4Auth(Credentials("AKIDEXAMPLE", "not-a-secret"), "execute-api", "us-east-1").add_auth(
        request
    )
    return dict(request.headers.items())


def shared_runtime_cache() -> Path:
    """The checkout's cache with the runtime client for this Python (PyPI on the first run)."""
    ensure_runtime_client(CACHE_DIR, LOCAL_PYTHON, ARCH, compile_with=current_python())
    return CACHE_DIR


def own_cache(folder: Path) -> Path:
    """A cache nobody else uses (so what a run leaves in it is that run's), whose runtime client
    folder is the checkout's (no second install)."""
    shared = shared_runtime_cache() / "runtime"
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(shared, folder / "runtime", target_is_directory=True)
    return folder


def run_leftovers(cache: Path) -> list[str]:
    """What local runs left in ``cache``: task roots (and half-unpacked ones) and work folders.
    The lock file and the (empty) folders themselves are shared infrastructure."""
    left = []
    for folder in ("task-roots", "local-runs"):
        if (cache / folder).is_dir():
            left += [f"{folder}/{p.name}" for p in (cache / folder).iterdir() if p.name != ".lock"]
    return sorted(left)


# The stack shapes the hostile suite and the V2 clients run against (`slimserve synth` options;
# infra refuses auth=none without acknowledged anonymous access and a concurrency ceiling).
_ANONYMOUS = {"auth": "none", "allow_anonymous": True, "reserved_concurrency": 10}
SHAPES: dict[str, dict[str, Any]] = {
    "http-none": {"api": "http", **_ANONYMOUS},
    "http-iam": {"api": "http", "auth": "iam"},
    "rest-none": {"api": "rest", **_ANONYMOUS},
    "rest-iam": {"api": "rest", "auth": "iam"},
    "rest-api_key": {"api": "rest", "auth": "api_key"},
}


def credentials(
    shape: str, method: str, url: str, body: bytes, headers: Mapping[str, str]
) -> dict[str, str]:
    """``headers`` with what a client of ``shape`` adds: a SigV4 signature (IAM) or the local
    API key (``LOCAL_KEY``)."""
    auth = SHAPES[shape]["auth"]
    if auth == "iam":
        return sigv4_headers(method, url, body, headers)
    if auth == "api_key":
        return {**headers, "x-api-key": LOCAL_KEY}
    return dict(headers)


def credential_lines(shape: str) -> list[str]:
    """Raw header lines with credentials of ``shape`` for hand-written requests (the local
    gateway checks a signature's shape, not its value)."""
    from slimserve.build.local.console import LOCAL_SIGV4_HEADERS

    auth = SHAPES[shape]["auth"]
    if auth == "iam":
        return [f"{name}: {value}" for name, value in LOCAL_SIGV4_HEADERS]
    return [f"x-api-key: {LOCAL_KEY}"] if auth == "api_key" else []


def http_request(
    url: str, method: str, headers: Mapping[str, str], body: bytes, *, timeout_s: float = 30.0
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection, the path sent exactly as given (http.client does not
    normalise ``..`` or re-encode). Raises TimeoutError when no answer comes in time."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body or None, headers=dict(headers))
        response = connection.getresponse()
        payload = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
    finally:
        connection.close()


def serve_shape(
    shape: str,
    builds: Mapping[str, Path],
    cache_dir: Path,
    started: contextlib.ExitStack,
    *,
    idle_timeout_s: float = 30.0,
) -> dict[str, tuple[LocalServer, Console]]:
    """Each build (name -> build folder) served as the stack of ``shape`` deploys it: the
    template synthesized (cached; two at a time), the local API key ``LOCAL_KEY``. The servers
    stop when ``started`` closes; each comes with the console it logs to."""
    from concurrent.futures import ThreadPoolExecutor

    from slimserve.build.local.apigw.template import gateway_config_from_template
    from slimserve.build.local.options import LocalRunOptions
    from slimserve.build.local.run import running
    from slimserve.build.local.synth import synthesized_template
    from slimserve.handler.manifest import load_manifest

    with ThreadPoolExecutor(max_workers=2) as pool:
        templates = {
            name: pool.submit(synthesized_template, build / "manifest.json", SHAPES[shape], CACHE_DIR)
            for name, build in builds.items()
        }
        served = {}
        for name, build in builds.items():
            manifest = load_manifest(build / "manifest.json")
            template = templates[name].result()[0]
            config = gateway_config_from_template(template, manifest, api_key=LOCAL_KEY)
            console = quiet_console()
            options = LocalRunOptions(config=config, cache_dir=cache_dir, idle_timeout_s=idle_timeout_s)
            served[name] = (started.enter_context(running(build, options, console=console)), console)
    return served
