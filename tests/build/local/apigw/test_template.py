"""`slimserve local` follows the synthesized template (issue 4): the GatewayConfig each stack
shape produces (build/local/apigw/template.py), and what the local gateway then answers, as API
Gateway would (no processes).

Templates are synthesized once per session by the same code path `slimserve local` uses
(build/local/synth.py: the pinned CDK CLI, offline, cached under .cache/local-synth). Limits,
crashes and timeouts already have tests against hand-written configs (test_gateway.py,
tests/build/local/test_run.py); here the configs come from the templates and only what they
change is checked. Real requests under each template: tests/build/local/test_run_templates.py.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from slimserve.build.errors import LocalRunError
from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.events import HttpRequest
from slimserve.build.local.apigw.gateway import Gateway
from slimserve.build.local.apigw.routing import Route
from slimserve.build.local.console import LOCAL_SIGV4_HEADERS
from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.run import resolve_config, resolve_target
from slimserve.build.local.runtime_api import InvocationResult

from localkit import LOCAL_KEY, STACKS, fake_jwt

pytestmark = pytest.mark.slow


# --- the config each template produces -------------------------------------------------------------


REST_PROXY_KEYS = {
    "ANY /{proxy+}",
    "ANY /v2",
    "ANY /v2/{proxy+}",
    "ANY /v2/models/{model_name}",
    "POST /v2/models/{model_name}/infer",
    "POST /v2/models/{model_name}/versions/{model_version}/infer",
    "POST /v2/models/{model_name}/explain",
    "POST /v2/models/{model_name}/versions/{model_version}/explain",
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
        assert len(config.routes) == 13  # 9 proxy resources + 4 validated infer/explain methods
        assert {route.authorization for route in config.routes} == {"none"}
        keyed = name == "rest-api_key"
        assert {route.api_key_required for route in config.routes} == {keyed}
        assert config.api_keys == ({"slimserve-digits-default": LOCAL_KEY} if keyed else {})
        assert config.binary_media_types == ("*/*", "application/octet-stream")
        assert config.integration_timeout_s == 29
        assert any("request validation" in note for note in config.notes)
    # The function as the stack configures it: the manifest's 20 s / 1024 MB unless overridden.
    expected_memory, expected_timeout = (2048, 10) if name == "rest-none" else (1024, 20)
    assert (config.memory_mb, config.function_timeout_s) == (expected_memory, expected_timeout)
    assert config.environment == {"SLIMSERVE_THREADS": "1"}
    assert config.skipped_environment == ()



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
    artifacts = resolve_target(digits_build)
    config = resolve_config(artifacts, LocalRunOptions(template=template))
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
        resolve_config(resolve_target(stripped), LocalRunOptions(template=template))


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
