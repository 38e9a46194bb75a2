"""API Gateway behaviour of the local front (build/local/apigw/gateway.py), without processes:
the events it sends, its limits, timeouts and error answers, against a fake function."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.events import HttpRequest
from slimserve.build.local.apigw.gateway import Gateway
from slimserve.build.local.apigw.routing import Route
from slimserve.build.local.runtime_api import InvocationResult

from hostilekit import REST_BINARY_MEDIA_TYPES
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
    gateway.handle(request("POST", "/prod", "", [], b"y"))  # no Content-Type: application/json
    assert received[0]["isBase64Encoded"] is True
    assert base64.b64decode(received[0]["body"]) == b"\x89PNG"
    assert [(e["isBase64Encoded"], e["body"]) for e in received[1:]] == [(False, "x"), (False, "y")]


REST_STACK = GatewayConfig(
    api_type="rest",
    payload_format="1.0",
    stage="prod",
    routes=(Route("ANY", "/"),),
    binary_media_types=REST_BINARY_MEDIA_TYPES,  # what slimserve's REST stack declares
)


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream", "text/plain", None])
def test_slimserve_rest_stack_passes_every_body_unchanged(content_type: str | None) -> None:
    """*/* makes every request body binary: base64 in the event, bytes as sent (invalid
    UTF-8 included), whatever the Content-Type, or none (tritonclient sends none)."""
    submit, received = fake_function(lambda e: OK)
    headers = [("Host", "h")] + ([("Content-Type", content_type)] if content_type else [])
    raw = b'{"x":"caf\xe9\xff"}'
    Gateway(REST_STACK, submit).handle(request("POST", "/prod/", "", headers, raw))
    assert received[0]["isBase64Encoded"] is True
    assert base64.b64decode(received[0]["body"]) == raw


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", '{"x":"caf\ufffd\ufffd"}'),  # a JSON string: Unicode only
        ("application/octet-stream", base64.b64encode(b'{"x":"caf\xe9\xff"}').decode()),
    ],
)
def test_invalid_utf_8_reaches_an_http_api_function_only_in_binary_bodies(content_type: str, body: str) -> None:
    submit, received = fake_function(lambda e: OK)
    headers = [("Host", "h"), ("Content-Type", content_type)]
    Gateway(GatewayConfig(), submit).handle(request("POST", "/", "", headers, b'{"x":"caf\xe9\xff"}'))
    assert received[0]["body"] == body
    assert received[0]["isBase64Encoded"] is (content_type == "application/octet-stream")


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
