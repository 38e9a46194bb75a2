"""API Gateway behaviour of the local front, without processes: routing, events, limits,
timeouts and response translation against a fake function."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from slimserve.build.local.apigw.events import (
    HttpRequest,
    InvalidLambdaResponse,
    http_response_from_v1_result,
    http_response_from_v2_result,
    media_type_matches,
)
from slimserve.build.local.apigw.gateway import Gateway, GatewayConfig, Route, match_route
from slimserve.build.local.runtime_api import InvocationResult
from slimserve.handler.manifest import load_manifest

from repo import EVENTS_DIR

EVENTS = EVENTS_DIR


def fake_function(
    answer: Callable[[dict], dict | str | bytes],
) -> tuple[Callable[[bytes, float], Future[InvocationResult | None]], list[dict]]:
    """A submit() whose function answers at once; records the events it received."""
    received: list[dict] = []

    def submit(payload: bytes, _wait_s: float) -> Future[InvocationResult | None]:
        event = json.loads(payload)
        received.append(event)
        result = answer(event)
        body = result if isinstance(result, bytes) else json.dumps(result).encode()
        future: Future[InvocationResult | None] = Future()
        future.set_result(InvocationResult("id", body))
        return future

    return submit, received


def request(
    method: str = "GET",
    path: str = "/",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> HttpRequest:
    return HttpRequest(method, path, query, headers or [("Host", "127.0.0.1:8000")], body)


OK = {"statusCode": 200, "body": "ok"}


# --- routes -------------------------------------------------------------------------------------


def test_route_keys_parse_and_print() -> None:
    assert Route.parse("$default") == Route("ANY", "$default")
    assert Route.parse("get /items/{id}") == Route("GET", "/items/{id}")
    assert Route.parse("POST /v2/{proxy+}").key == "POST /v2/{proxy+}"
    with pytest.raises(ValueError):
        Route.parse("items")


def test_most_specific_route_wins() -> None:
    routes = tuple(
        Route.parse(key)
        for key in ("$default", "ANY /{proxy+}", "GET /items/{id}", "GET /items/special")
    )
    assert match_route(routes, "GET", "/items/special").route_key == "GET /items/special"
    by_id = match_route(routes, "GET", "/items/7")
    assert (by_id.route_key, by_id.path_parameters) == ("GET /items/{id}", {"id": "7"})
    greedy = match_route(routes, "POST", "/items/7/parts")
    assert (greedy.route_key, greedy.path_parameters) == (
        "ANY /{proxy+}",
        {"proxy": "items/7/parts"},
    )
    assert match_route(routes, "GET", "/").route_key == "$default"
    assert match_route((Route.parse("GET /a"),), "POST", "/a") is None


def test_greedy_variable_needs_one_segment() -> None:
    routes = (Route("ANY", "/{proxy+}"),)
    assert match_route(routes, "GET", "/") is None


# --- events -------------------------------------------------------------------------------------


def test_v2_event_has_the_recorded_event_shape() -> None:
    submit, received = fake_function(lambda e: OK)
    Gateway(GatewayConfig(), submit).handle(
        request(
            "POST", "/v2/x", "a=1", [("Host", "h:1"), ("Content-Type", "application/json")], b"{}"
        )
    )
    recorded = json.loads((EVENTS / "http-api-v2.json").read_text())
    event = received[0]
    optional = {"cookies", "pathParameters", "stageVariables", "queryStringParameters", "body"}
    assert set(event) - optional <= set(recorded)
    assert set(recorded) - optional - {"body"} <= set(event)
    assert set(event["requestContext"]) <= set(recorded["requestContext"])
    assert set(event["requestContext"]["http"]) == set(recorded["requestContext"]["http"])


def test_v1_event_has_the_recorded_rest_shape() -> None:
    config = GatewayConfig(
        api_type="rest",
        payload_format="1.0",
        stage="prod",
        routes=(Route("ANY", "/"), Route("ANY", "/{proxy+}")),
    )
    submit, received = fake_function(lambda e: OK)
    Gateway(config, submit).handle(request("GET", "/prod/path/to/resource", "foo=bar"))
    recorded = json.loads((EVENTS / "apigw-rest-v1.json").read_text())
    event = received[0]
    assert set(event) == set(recorded)
    assert event["path"] == "/path/to/resource"
    assert event["resource"] == "/{proxy+}"
    assert event["requestContext"]["path"] == "/prod/path/to/resource"
    assert event["requestContext"]["stage"] == "prod"
    assert event["queryStringParameters"] == {"foo": "bar"}


def test_http_api_named_stage_keeps_the_stage_in_the_path() -> None:
    submit, received = fake_function(lambda e: OK)
    gateway = Gateway(GatewayConfig(stage="prod"), submit)
    assert gateway.handle(request("GET", "/v2/health")).response.status == 404
    assert gateway.handle(request("GET", "/prod/v2/health")).response.status == 200
    assert received[0]["rawPath"] == "/prod/v2/health"
    assert received[0]["requestContext"]["stage"] == "prod"


@pytest.mark.parametrize(
    ("content_type", "base64_expected"),
    [
        ("application/json", False),
        ("application/json; charset=utf-8", False),
        ("text/csv", False),
        ("application/xml", False),
        ("application/x-www-form-urlencoded", True),
        ("application/octet-stream", True),
        (None, True),
    ],
)
def test_http_api_base64_encodes_non_text_bodies(
    content_type: str | None, base64_expected: bool
) -> None:
    submit, received = fake_function(lambda e: OK)
    headers = [("Host", "h")] + ([("Content-Type", content_type)] if content_type else [])
    Gateway(GatewayConfig(), submit).handle(request("POST", "/", "", headers, b"abc"))
    event = received[0]
    assert event["isBase64Encoded"] is base64_expected
    assert event["body"] == ("YWJj" if base64_expected else "abc")


def test_rest_api_base64_encodes_only_binary_media_types() -> None:
    config = GatewayConfig(
        api_type="rest",
        payload_format="1.0",
        stage="prod",
        routes=(Route("ANY", "/"),),
        binary_media_types=("image/*",),
    )
    submit, received = fake_function(lambda e: OK)
    gateway = Gateway(config, submit)
    gateway.handle(request("POST", "/prod", "", [("Content-Type", "image/png")], b"\x89PNG"))
    gateway.handle(
        request("POST", "/prod", "", [("Content-Type", "application/octet-stream")], b"x")
    )
    assert received[0]["isBase64Encoded"] is True
    assert base64.b64decode(received[0]["body"]) == b"\x89PNG"
    assert received[1]["isBase64Encoded"] is False
    assert received[1]["body"] == "x"


# --- gateway answers ------------------------------------------------------------------------


def test_jwt_route_rejects_requests_without_a_token() -> None:
    submit, received = fake_function(lambda e: OK)
    gateway = Gateway(GatewayConfig(routes=(Route("ANY", "$default", "jwt"),)), submit)
    reply = gateway.handle(request())
    assert reply.response.status == 401
    assert json.loads(reply.response.body) == {"message": "Unauthorized"}
    assert received == []
    with_token = request(headers=[("Authorization", "Bearer x")])
    assert gateway.handle(with_token).response.status == 200


def test_too_large_body_never_reaches_the_function() -> None:
    submit, received = fake_function(lambda e: OK)
    gateway = Gateway(GatewayConfig(), submit)
    reply = gateway.handle(request("POST", "/", body=b"x" * (10 * 1024 * 1024 + 1)))
    assert reply.response.status == 413
    assert received == []


def test_integration_timeout_answers_while_the_function_still_runs() -> None:
    release = threading.Event()

    def slow_submit(payload: bytes, _wait_s: float) -> Future[InvocationResult | None]:
        future: Future[InvocationResult | None] = Future()
        threading.Thread(
            target=lambda: (release.wait(5), future.set_result(InvocationResult("i", b"{}")))
        ).start()
        return future

    try:
        http_reply = Gateway(GatewayConfig(integration_timeout_s=0.05), slow_submit).handle(
            request()
        )
        rest = GatewayConfig(
            api_type="rest",
            payload_format="1.0",
            stage="prod",
            routes=(Route("ANY", "/"),),
            integration_timeout_s=0.05,
        )
        rest_reply = Gateway(rest, slow_submit).handle(request(path="/prod"))
    finally:
        release.set()
    assert (http_reply.response.status, json.loads(http_reply.response.body)) == (
        503,
        {"message": "Service Unavailable"},
    )
    assert (rest_reply.response.status, json.loads(rest_reply.response.body)) == (
        504,
        {"message": "Endpoint request timed out"},
    )


def test_function_error_is_a_502() -> None:
    def failing(payload: bytes, _wait_s: float) -> Future[InvocationResult | None]:
        future: Future[InvocationResult | None] = Future()
        future.set_result(
            InvocationResult("i", b'{"errorType": "ValueError", "errorMessage": "x"}', "Unhandled")
        )
        return future

    reply = Gateway(GatewayConfig(), failing).handle(request())
    assert reply.response.status == 502
    assert json.loads(reply.response.body) == {"message": "Internal Server Error"}
    assert "ValueError" in reply.detail


# --- response translation ---------------------------------------------------------------------


def test_v2_result_translation() -> None:
    response = http_response_from_v2_result(
        json.dumps(
            {
                "statusCode": 201,
                "headers": {"x-n": 5, "x-flag": True},
                "multiValueHeaders": {"x-ignored": ["a"]},
                "cookies": ["a=1", "b=2"],
                "body": base64.b64encode(b"\x00\x01").decode(),
                "isBase64Encoded": True,
            }
        ).encode()
    )
    assert response.status == 201
    assert ("x-n", "5") in response.headers and ("x-flag", "true") in response.headers
    assert [v for k, v in response.headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert not any(k == "x-ignored" for k, _ in response.headers)
    assert response.body == b"\x00\x01"


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "abc"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": {"x": ["list"]}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 99},
    ],
)
def test_malformed_v2_results_are_rejected(result: dict) -> None:
    with pytest.raises(InvalidLambdaResponse):
        http_response_from_v2_result(json.dumps(result).encode())


def test_v2_infers_json_for_results_without_status_code() -> None:
    for payload in (b'"hello"', b"[1, 2]", b'{"a": 1}'):
        response = http_response_from_v2_result(payload)
        assert (response.status, response.body) == (200, payload)
        assert response.headers == [("content-type", "application/json")]
    with pytest.raises(InvalidLambdaResponse):
        http_response_from_v2_result(b"not json")


def test_v1_merges_multi_value_headers_and_needs_a_status_code() -> None:
    response = http_response_from_v1_result(
        json.dumps(
            {
                "statusCode": 200,
                "headers": {"x-single": "1", "set-cookie": "dropped"},
                "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]},
                "body": "hi",
            }
        ).encode(),
        api_type="http",
        accept=None,
    )
    assert response.headers == [("x-single", "1"), ("set-cookie", "a=1"), ("set-cookie", "b=2")]
    with pytest.raises(InvalidLambdaResponse):
        http_response_from_v1_result(b'{"body": "x"}', api_type="http", accept=None)


def test_rest_decodes_base64_only_for_binary_accept_types() -> None:
    result = json.dumps(
        {"statusCode": 200, "body": base64.b64encode(b"\x89PNG").decode(), "isBase64Encoded": True}
    ).encode()
    kinds = ("image/png",)
    decoded = http_response_from_v1_result(
        result, api_type="rest", accept="image/png, */*", binary_media_types=kinds
    )
    assert decoded.body == b"\x89PNG"
    # Only the first Accept type counts.
    kept = http_response_from_v1_result(
        result, api_type="rest", accept="text/html, image/png", binary_media_types=kinds
    )
    assert kept.body == base64.b64encode(b"\x89PNG")


def test_media_type_wildcards() -> None:
    assert media_type_matches("image/png", ["image/*"])
    assert media_type_matches("application/x-npy", ["*/*"])
    assert not media_type_matches("text/plain", ["image/*"])
    assert not media_type_matches("", ["*/*"])


# --- configuration ------------------------------------------------------------------------------


def test_config_defaults_come_from_the_manifest(tmp_path: Path) -> None:
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(
        json.dumps(
            {
                "schema": 1,
                "name": "m",
                "model": {"file": "model.onnx", "sha256": "0" * 64, "bytes": 0},
                "inputs": [],
                "outputs": [],
                "runtime": {"timeout_s": 7, "memory_mb": 512},
            }
        )
    )
    manifest = load_manifest(manifest_file)
    http = GatewayConfig.from_manifest(manifest)
    assert (http.api_type, http.payload_format, http.stage) == ("http", "2.0", "$default")
    assert (http.function_timeout_s, http.memory_mb, http.integration_timeout_s) == (7, 512, 30)
    assert http.routes == (Route("ANY", "$default"),)
    rest = GatewayConfig.from_manifest(manifest, api_type="rest")
    assert (rest.payload_format, rest.stage, rest.integration_timeout_s) == ("1.0", "prod", 29)
    assert rest.stage_prefix == "/prod"


def test_inconsistent_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="payload format 1.0"):
        GatewayConfig(api_type="rest", payload_format="2.0", stage="prod")
    with pytest.raises(ValueError, match="named stages"):
        GatewayConfig(api_type="rest", payload_format="1.0")
    with pytest.raises(ValueError, match="positive"):
        GatewayConfig(integration_timeout_s=0)
