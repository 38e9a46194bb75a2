"""A local run under each stack's template (build/local/run.py with the GatewayConfig that
build/local/apigw/template.py reads): the digits zip and the probe function answer as the
deployed API would, and `slimserve invoke` follows a given template."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.console import LOCAL_SIGV4_HEADERS
from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.run import LocalServer, running

from localkit import (
    CACHE_DIR,
    LOCAL_KEY,
    STACKS,
    console_text,
    fake_jwt,
    quiet_console,
    sigv4_headers,
)
from repo import REPO_ROOT

pytestmark = pytest.mark.slow

EVENTS = REPO_ROOT / "tests" / "events"


# --- real requests: the digits zip under the real runtime client ----------------------------------


def credentials_for(name: str, method: str, url: str, body: bytes) -> dict[str, str]:
    if name == "http-iam":
        return sigv4_headers(method, url, body)
    headers = {"content-type": "application/json"}
    if name == "http-jwt":
        headers["authorization"] = "Bearer " + fake_jwt({"sub": "user-1"})
    if name == "rest-api_key":
        headers["x-api-key"] = LOCAL_KEY
    return headers


@pytest.fixture(scope="module")
def digits_servers(
    digits_build: Path, configs: dict[str, GatewayConfig]
) -> Iterator[dict[str, LocalServer]]:
    servers: dict[str, LocalServer] = {}
    contexts = []
    try:
        for name in STACKS:
            options = LocalRunOptions(config=configs[name], cache_dir=CACHE_DIR)
            context = running(digits_build, options, console=quiet_console())
            servers[name] = context.__enter__()
            contexts.append(context)
        yield servers
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


UNAUTHENTICATED = {
    "http-iam": (403, {"message": "Forbidden"}),
    "http-jwt": (401, {"message": "Unauthorized"}),
    "rest-api_key": (403, {"message": "Forbidden"}),
    "rest-none": None,  # open: the digit comes back
}


@pytest.mark.parametrize("name", list(STACKS))
def test_inference_through_each_template(name: str, digits_servers: dict[str, LocalServer]) -> None:
    server = digits_servers[name]
    assert server.url.endswith(server.config.stage_prefix)
    event = json.loads((EVENTS / "infer-digits.json").read_text())
    url = server.url + event["rawPath"]
    body = event["body"].encode()
    anonymous = httpx.post(
        url, content=body, headers={"content-type": "application/json"}, timeout=30
    )
    expected = UNAUTHENTICATED[name]
    if expected is not None:
        assert (anonymous.status_code, anonymous.json()) == expected
    response = httpx.post(
        url, content=body, headers=credentials_for(name, "POST", url, body), timeout=30
    )
    assert response.status_code == 200, response.text
    for answered in [response] + ([anonymous] if expected is None else []):
        outputs = {output["name"]: output for output in answered.json()["outputs"]}
        assert outputs["label"]["data"][0] == "4"  # the event holds a handwritten 4


@pytest.mark.parametrize(("name", "content_type", "body"), [
    ("http-iam", "application/json", {"message": "Request Entity Too Large"}),
    ("rest-api_key", "text; charset=utf-8", "HTTP content length exceeded 10485760 bytes."),
])  # fmt: skip
def test_body_over_10_mb_is_refused_before_auth(
    name: str, content_type: str, body: Any, digits_servers: dict[str, LocalServer]
) -> None:
    server = digits_servers[name]
    big = b"x" * (10 * 1024 * 1024 + 1)
    response = httpx.post(f"{server.url}/v2/models/digits/infer", content=big, timeout=60)
    assert response.status_code == 413
    assert response.headers["content-type"] == content_type
    assert (response.json() if content_type == "application/json" else response.text) == body


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain", None])
def test_rest_stack_base64_encodes_every_body_so_5_mb_outgrows_the_event(
    content_type: str | None, digits_servers: dict[str, LocalServer]
) -> None:
    """The REST stack's binary media types (*/*) make every body binary, whatever its
    Content-Type: base64 turns 5 MB into 7 MB, over Lambda's 6 MB event, and API Gateway
    answers itself (the limit slimserve synth's max_body_bytes check is built on)."""
    server = digits_servers["rest-api_key"]
    body = b"x" * (5 * 1024 * 1024 + 4096)  # under 10 MB; base64 makes it 7 MB
    headers = {"x-api-key": LOCAL_KEY} | ({"content-type": content_type} if content_type else {})
    response = httpx.post(f"{server.url}/v2/models/digits/infer", content=body, headers=headers, timeout=60)
    assert response.status_code == 413
    assert response.text == '{"message": "Request Too Long"}'
    assert response.headers["x-amzn-errortype"] == "BadRequestException"



# --- real requests: a probe function that crashes, sleeps and reports its environment ----------



@pytest.mark.parametrize(("name", "crash_body"), [
    ("http-iam", {"message": "Internal Server Error"}),
    ("rest-none", {"message": "Internal server error"}),
])  # fmt: skip
def test_probe_function_under_each_template(
    name: str,
    crash_body: dict,
    configs: dict[str, GatewayConfig],
    probe_build: Path,
    cache_dir: Path,
) -> None:
    # The template's gateway and function settings; a shorter integration timeout to test it.
    config = dataclasses.replace(configs[name], integration_timeout_s=1.0)
    options = LocalRunOptions(config=config, cache_dir=cache_dir)
    console = quiet_console()
    with (
        running(probe_build, options, console=console, banner=True) as server,
        httpx.Client(base_url=server.url, headers=dict(LOCAL_SIGV4_HEADERS), timeout=30) as http,
    ):
        environment = http.get("/environment").json()
        assert environment["memory_limit_in_mb"] == str(configs[name].memory_mb)
        assert environment["environ"]["SLIMSERVE_THREADS"] == "1"
        assert environment["remaining_ms"] <= configs[name].function_timeout_s * 1000
        for path in ("/raise", "/crash"):
            failed = http.get(path)
            assert (failed.status_code, failed.json()) == (502, crash_body), path
        slow = http.get("/sleep", params={"s": "2"})
        expected = (
            (503, "Service Unavailable")
            if name == "http-iam"
            else (504, "Endpoint request timed out")
        )
        assert (slow.status_code, slow.json()["message"]) == expected
    banner = console_text(console)
    assert f"Following {configs[name].source}" in banner
    assert ("Signatures are NOT verified locally" in banner) == (name == "http-iam")


def test_cli_invoke_follows_a_given_template(
    templates: dict[str, Path],
    configs: dict[str, GatewayConfig],
    probe_build: Path,
    cache_dir: Path,
) -> None:
    from typer.testing import CliRunner

    from slimserve.build.cli import app

    event = EVENTS / "http-api-v2.json"
    recorded = json.loads(event.read_text())
    recorded["rawPath"] = "/environment"
    event_file = probe_build.parent / "environment-event.json"
    event_file.write_text(json.dumps(recorded))
    result = CliRunner().invoke(
        app,
        [
            "invoke",
            str(probe_build),
            "--event",
            str(event_file),
            "--template",
            str(templates["rest-none"]),
        ],
        env={"SLIMSERVE_CACHE_DIR": str(cache_dir)},
    )
    assert result.exit_code == 0, result.output
    environment = json.loads(json.loads(result.stdout)["body"])
    assert environment["memory_limit_in_mb"] == "2048"  # the template's, not the manifest's 1024
    both = CliRunner().invoke(
        app, ["local", str(probe_build), "--template", "x.json", "--no-template"]
    )
    assert both.exit_code == 2 and "not both" in both.output
