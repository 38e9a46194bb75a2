"""`slimserve local` follows the synthesized template (issue 4): the GatewayConfig each stack
shape produces, and what the local gateway then answers, as API Gateway would.

Templates are synthesized once per module by the same code path `slimserve local` uses
(build/local/apigw/template.py: the pinned CDK CLI, offline, cached under .cache/local-synth). Limits,
crashes and timeouts already have tests against hand-written configs (test_gateway.py,
test_local.py); here the configs come from the templates and only what they change is checked.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import stat
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from slimserve.build.errors import LocalRunError
from slimserve.build.local.apigw.events import HttpRequest
from slimserve.build.local.apigw.gateway import Gateway, GatewayConfig, Route
from slimserve.build.local.apigw.template import (
    gateway_config_from_template,
    synth_cache_key,
    synthesized_template,
)
from slimserve.build.local.python import current_python, ensure_runtime_client
from slimserve.build.local.run import LOCAL_SIGV4_HEADERS, LocalServer, resolve_config, running
from slimserve.build.local.runtime_api import InvocationResult
from slimserve.handler.manifest import load_manifest

from repo import REPO_ROOT

pytestmark = pytest.mark.slow

CACHE_DIR = REPO_ROOT / ".cache"
EVENTS = REPO_ROOT / "tests" / "events"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOCAL_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"

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


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=200, soft_wrap=True)


def console_text(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return " ".join(console.file.getvalue().replace("│", " ").split())


@pytest.fixture(scope="module")
def templates(digits_build: Path) -> dict[str, Path]:
    """name -> template path, synthesized as `slimserve local` does (2 at a time: 2 cores)."""
    manifest = digits_build / "manifest.json"
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(synthesized_template, manifest, options, CACHE_DIR)
            for name, options in STACKS.items()
        }
        return {name: future.result()[0] for name, future in futures.items()}


@pytest.fixture(scope="module")
def configs(templates: dict[str, Path], digits_build: Path) -> dict[str, GatewayConfig]:
    manifest = load_manifest(digits_build / "manifest.json")
    return {
        name: gateway_config_from_template(path, manifest, api_key=LOCAL_KEY)
        for name, path in templates.items()
    }


@pytest.fixture(scope="module")
def runtime_cache() -> Path:
    # The runtime client for this Python, for the probe function (PyPI on the first run only).
    ensure_runtime_client(CACHE_DIR, LOCAL_PYTHON, current_python().lambda_architecture,
                          compile_with=current_python())  # fmt: skip
    return CACHE_DIR


# --- the config each template produces -------------------------------------------------------------


REST_PROXY_KEYS = {
    "ANY /{proxy+}",
    "ANY /v2",
    "ANY /v2/{proxy+}",
    "ANY /v2/models/{model_name}",
    "POST /v2/models/{model_name}/infer",
    "POST /v2/models/{model_name}/versions/{model_version}/infer",
}


@pytest.mark.parametrize("name", list(STACKS))
def test_each_template_gives_its_gateway_config(
    name: str, configs: dict[str, GatewayConfig]
) -> None:
    config = configs[name]
    assert config.source.startswith("template ") and config.source.endswith(".template.json")
    if name.startswith("http"):
        authorization = "iam" if name == "http-iam" else "jwt"
        assert (config.api_type, config.payload_format) == ("http", "2.0")
        assert (config.stage, config.stage_prefix) == ("$default", "")
        # One greedy route: "/" itself is not routed on the deployed API either.
        assert config.routes == (Route("ANY", "/{proxy+}", authorization),)
        assert config.binary_media_types == ()
        assert config.integration_timeout_s == 30
        assert config.api_keys == {}
    else:
        assert (config.api_type, config.payload_format) == ("rest", "1.0")
        assert (config.stage, config.stage_prefix) == ("prod", "/prod")
        assert REST_PROXY_KEYS <= {route.key for route in config.routes}
        assert len(config.routes) == 11  # 9 proxy resources + 2 validated infer methods
        assert {route.authorization for route in config.routes} == {"none"}
        keyed = name == "rest-api_key"
        assert {route.api_key_required for route in config.routes} == {keyed}
        assert config.api_keys == ({"slimserve-digits-default": LOCAL_KEY} if keyed else {})
        assert config.binary_media_types == ("application/octet-stream",)
        assert config.integration_timeout_s == 29
        assert any("request validation" in note for note in config.notes)
    # The function as the stack configures it: the manifest's 20 s / 1024 MB unless overridden.
    expected_memory, expected_timeout = (2048, 10) if name == "rest-none" else (1024, 20)
    assert (config.memory_mb, config.function_timeout_s) == (expected_memory, expected_timeout)
    assert config.environment == {"SLIMSERVE_THREADS": "1"}
    assert config.skipped_environment == ()


def test_templates_are_synthesized_once_per_manifest_and_options(
    templates: dict[str, Path], digits_build: Path, tmp_path: Path
) -> None:
    manifest = digits_build / "manifest.json"
    again, cached = synthesized_template(manifest, STACKS["http-iam"], CACHE_DIR)
    assert (again, cached) == (templates["http-iam"], True)
    assert templates["http-iam"].parent.parent == CACHE_DIR / "local-synth"
    # Only the template is kept, not the cloud assembly with its copy of lambda.zip.
    assert {p.name for p in again.parent.iterdir()} == {again.name, "inputs.json"}
    key = synth_cache_key(manifest, {})
    assert key == again.parent.name
    assert synth_cache_key(manifest, {"memory_mb": 2048}) != key
    changed = tmp_path / "manifest.json"
    changed.write_text(manifest.read_text().replace('"timeout_s": 20', '"timeout_s": 21'))
    assert synth_cache_key(changed, {}) != key


def test_package_s3_loads_the_model_from_the_zip_or_refuses(
    templates: dict[str, Path], digits_build: Path, tmp_path: Path
) -> None:
    # The variables infra/ sets for package=s3 (the bucket is a Ref: it exists only on AWS).
    template = json.loads(templates["http-iam"].read_text())
    function = next(
        r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    )
    function["Properties"]["Environment"]["Variables"] |= {
        "SLIMSERVE_MODEL_S3_BUCKET": {"Ref": "ModelStoreBucket"},
        "SLIMSERVE_MODEL_S3_KEY": "models/abc/model.onnx",
        "SLIMSERVE_MODEL_S3_SHA256": "abc",
        "OTHER_ARN": {"Fn::GetAtt": ["Something", "Arn"]},
    }
    from slimserve.build.local.run import resolve_target

    artifacts = resolve_target(digits_build)
    config = resolve_config(artifacts, template=template)
    assert config.environment == {"SLIMSERVE_THREADS": "1"}
    assert set(config.skipped_environment) == {
        "SLIMSERVE_MODEL_S3_BUCKET",
        "SLIMSERVE_MODEL_S3_KEY",
        "SLIMSERVE_MODEL_S3_SHA256",
        "OTHER_ARN",
    }
    notes = " ".join(config.notes)
    assert "from lambda.zip's model/ folder instead" in notes
    assert 'OTHER_ARN = {"Fn::GetAtt":["Something","Arn"]} is resolved by CloudFormation' in notes

    # A zip without the model cannot stand in for the bucket: a clear refusal.
    stripped = tmp_path / "build"
    stripped.mkdir()
    (stripped / "manifest.json").write_bytes((digits_build / "manifest.json").read_bytes())
    with zipfile.ZipFile(stripped / "lambda.zip", "w") as archive:
        archive.writestr("model/manifest.json", (digits_build / "manifest.json").read_text())
    with pytest.raises(LocalRunError, match=r"package=s3 .* no model/model.onnx"):
        resolve_config(resolve_target(stripped), template=template)


# --- authorization and routing, as each template configures it (no processes) ---------------------


def recording_gateway(config: GatewayConfig) -> tuple[Gateway, list[dict]]:
    received: list[dict] = []

    def submit(payload: bytes, _wait_s: float) -> Future[InvocationResult | None]:
        received.append(json.loads(payload))
        future: Future[InvocationResult | None] = Future()
        future.set_result(InvocationResult("id", b'{"statusCode": 200, "body": "ok"}'))
        return future

    return Gateway(config, submit), received


def gateway_request(
    path: str, headers: list[tuple[str, str]] = (), method: str = "GET"
) -> HttpRequest:
    return HttpRequest(method, path, "", [("Host", "127.0.0.1"), *headers], b"")


def answer(gateway: Gateway, request: HttpRequest) -> tuple[int, Any, dict[str, str]]:
    response = gateway.handle(request).response
    try:
        body: Any = json.loads(response.body)
    except ValueError:
        body = response.body.decode()
    return response.status, body, {k.lower(): v for k, v in response.headers}


def fake_jwt(claims: dict[str, Any]) -> str:
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_http_api_with_iam_wants_a_sigv4_signature(configs: dict[str, GatewayConfig]) -> None:
    gateway, received = recording_gateway(configs["http-iam"])
    assert answer(gateway, gateway_request("/v2/health/ready"))[:2] == (
        403,
        {"message": "Forbidden"},
    )
    bearer = [("Authorization", "Bearer abc")]
    assert answer(gateway, gateway_request("/v2/health/ready", bearer))[:2] == (
        403,
        {"message": "Forbidden"},
    )
    assert received == []
    status, _, headers = answer(
        gateway, gateway_request("/v2/health/ready", list(LOCAL_SIGV4_HEADERS))
    )
    assert status == 200 and "apigw-requestid" in headers
    assert received[0]["requestContext"]["authorizer"]["iam"]["accessKey"] == "AKIDLOCAL"
    # No route for "/" on the deployed API (ANY /{proxy+} needs a segment): HTTP API's 404.
    assert answer(gateway, gateway_request("/", list(LOCAL_SIGV4_HEADERS)))[:2] == (
        404,
        {"message": "Not Found"},
    )


def test_http_api_with_jwt_wants_a_bearer_token(configs: dict[str, GatewayConfig]) -> None:
    gateway, received = recording_gateway(configs["http-jwt"])
    assert answer(gateway, gateway_request("/v2"))[:2] == (401, {"message": "Unauthorized"})
    token = fake_jwt({"sub": "user-1", "aud": ["digits-clients"], "exp": 1893456000})
    assert answer(gateway, gateway_request("/v2", [("Authorization", f"Bearer {token}")]))[0] == 200
    claims = received[0]["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims == {"sub": "user-1", "aud": "[digits-clients]", "exp": "1893456000"}


def test_rest_api_with_keys_wants_a_key_of_the_usage_plan(
    configs: dict[str, GatewayConfig],
) -> None:
    gateway, received = recording_gateway(configs["rest-api_key"])
    forbidden = (403, {"message": "Forbidden"})
    assert answer(gateway, gateway_request("/prod/v2"))[:2] == forbidden
    status, body, headers = answer(gateway, gateway_request("/prod/v2", [("x-api-key", "wrong")]))
    assert (status, body, headers["x-amzn-errortype"]) == (*forbidden, "ForbiddenException")
    assert received == []
    assert answer(gateway, gateway_request("/prod/v2", [("x-api-key", LOCAL_KEY)]))[0] == 200
    identity = received[0]["requestContext"]["identity"]
    assert (identity["apiKey"], identity["apiKeyId"]) == (LOCAL_KEY, "slimserve-digits-default")
    assert received[0]["requestContext"]["stage"] == "prod"


def test_rest_api_routes_by_resource_then_method(configs: dict[str, GatewayConfig]) -> None:
    gateway, received = recording_gateway(configs["rest-none"])
    missing = (403, {"message": "Missing Authentication Token"})
    # Outside the stage, the root resource (no method on it), and GET on the POST-only infer
    # resource (REST does not fall back to the greedy sibling).
    for path, method in (
        ("/v2", "GET"),
        ("/prod/", "GET"),
        ("/prod/v2/models/digits/infer", "GET"),
    ):
        status, body, headers = answer(gateway, gateway_request(path, method=method))
        assert (status, body) == missing, path
        assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert received == []
    assert answer(gateway, gateway_request("/prod/v2/models/digits/infer", method="POST"))[0] == 200
    assert received[-1]["resource"] == "/v2/models/{model_name}/infer"
    assert received[-1]["pathParameters"] == {"model_name": "digits"}
    assert answer(gateway, gateway_request("/prod/v2/models/digits/ready"))[0] == 200
    assert received[-1]["resource"] == "/v2/models/{model_name}/{proxy+}"
    # An Authorization header on an unknown route is read as a SigV4 one first, as REST does.
    status, body, headers = answer(
        gateway, gateway_request("/prod/", [("Authorization", "Bearer x")])
    )
    assert (status, headers["x-amzn-errortype"]) == (403, "IncompleteSignatureException")
    assert body == {
        "message": "'x' not a valid key=value pair (missing equal-sign) in Authorization header: "
        "'Bearer x'."
    }


def test_rest_api_with_iam_answers_like_rest(configs: dict[str, GatewayConfig]) -> None:
    # api=rest auth=iam puts AWS_IAM on every method; same template otherwise.
    rest = configs["rest-none"]
    config = dataclasses.replace(
        rest, routes=tuple(dataclasses.replace(r, authorization="iam") for r in rest.routes)
    )
    gateway, received = recording_gateway(config)
    assert answer(gateway, gateway_request("/prod/v2"))[:2] == (
        403,
        {"message": "Missing Authentication Token"},
    )
    token = fake_jwt({"sub": "x"})
    status, body, headers = answer(gateway, gateway_request("/prod/v2", [("Authorization", token)]))
    assert (status, headers["x-amzn-errortype"]) == (403, "IncompleteSignatureException")
    assert body["message"] == (
        "Authorization header requires 'Credential' parameter. Authorization header requires "
        "'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. "
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        f"Authorization={token}"
    )
    assert received == []
    assert answer(gateway, gateway_request("/prod/v2", list(LOCAL_SIGV4_HEADERS)))[0] == 200
    assert received[0]["requestContext"]["identity"]["accessKey"] == "AKIDLOCAL"


@pytest.mark.parametrize(("name", "status", "body"), [
    ("http-iam", 503, {"message": "Service Unavailable"}),
    ("rest-api_key", 504, {"message": "Endpoint request timed out"}),
])  # fmt: skip
def test_integration_timeout_answers_as_each_api_type(
    name: str, status: int, body: dict, configs: dict[str, GatewayConfig]
) -> None:
    # The template's own timeout (30 s / 29 s) with a function that never answers in time.
    never: Future[InvocationResult | None] = Future()
    config = dataclasses.replace(configs[name], integration_timeout_s=0.05)
    gateway = Gateway(config, lambda payload, wait_s: never)
    headers = [*LOCAL_SIGV4_HEADERS, ("x-api-key", LOCAL_KEY)]
    path = f"{config.stage_prefix}/v2"
    assert answer(gateway, gateway_request(path, headers))[:2] == (status, body)
    assert configs[name].integration_timeout_s == {"http-iam": 30, "rest-api_key": 29}[name]


# --- real requests: the digits zip under the real runtime client ----------------------------------


def sigv4_headers(method: str, url: str, body: bytes) -> dict[str, str]:
    """A real SigV4 signature with made-up credentials (never sent to AWS)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method=method, url=url, data=body, headers={"content-type": "application/json"}
    )
    SigV4Auth(Credentials("AKIDEXAMPLE", "not-a-secret"), "execute-api", "us-east-1").add_auth(
        request
    )
    return dict(request.headers.items())


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
            context = running(
                digits_build, config=configs[name], cache_dir=CACHE_DIR, console=quiet_console()
            )
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


def test_rest_binary_media_types_decide_when_the_event_outgrows_6_mb(
    digits_servers: dict[str, LocalServer],
) -> None:
    server = digits_servers["rest-api_key"]
    url = f"{server.url}/v2/models/digits/infer"
    body = b"x" * (5 * 1024 * 1024 + 4096)  # under 10 MB; base64 makes it 7 MB
    binary = httpx.post(
        url,
        content=body,
        headers={"x-api-key": LOCAL_KEY, "content-type": "application/octet-stream"},
        timeout=60,
    )
    assert binary.status_code == 413
    assert binary.text == '{"message": "Request Too Long"}'
    assert binary.headers["x-amzn-errortype"] == "BadRequestException"
    # Not a binary media type: REST passes the body as text, the event stays under 6 MB and the
    # handler itself refuses the body (its own {"error": ...} 413).
    text = httpx.post(
        url,
        content=body,
        headers={"x-api-key": LOCAL_KEY, "content-type": "text/plain"},
        timeout=60,
    )
    assert text.status_code == 413 and "error" in text.json()


# --- real requests: a probe function that crashes, sleeps and reports its environment ----------


@pytest.fixture(scope="module")
def probe_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("probe")
    with zipfile.ZipFile(folder / "lambda.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("app.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        archive.writestr(info, (FIXTURES / "probe_app.py").read_text())
    manifest = {
        "schema": 1,
        "name": "probe",
        "model": {"file": "model.onnx", "sha256": "0" * 64, "bytes": 0},
        "inputs": [],
        "outputs": [],
        "runtime": {
            "python": LOCAL_PYTHON,
            "architecture": current_python().lambda_architecture,
            "handler": "app.handler",
            "timeout_s": 20,
            "memory_mb": 1024,
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize(("name", "crash_body"), [
    ("http-iam", {"message": "Internal Server Error"}),
    ("rest-none", {"message": "Internal server error"}),
])  # fmt: skip
def test_probe_function_under_each_template(
    name: str,
    crash_body: dict,
    configs: dict[str, GatewayConfig],
    probe_build: Path,
    runtime_cache: Path,
) -> None:
    # The template's gateway and function settings; a shorter integration timeout to test it.
    config = dataclasses.replace(configs[name], integration_timeout_s=1.0)
    console = quiet_console()
    with (
        running(
            probe_build, config=config, cache_dir=runtime_cache, console=console, banner=True
        ) as server,
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
    runtime_cache: Path,
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
        env={"SLIMSERVE_CACHE_DIR": str(runtime_cache)},
    )
    assert result.exit_code == 0, result.output
    environment = json.loads(json.loads(result.stdout)["body"])
    assert environment["memory_limit_in_mb"] == "2048"  # the template's, not the manifest's 1024
    both = CliRunner().invoke(
        app, ["local", str(probe_build), "--template", "x.json", "--no-template"]
    )
    assert both.exit_code == 2 and "not both" in both.output
