"""The Lambda handler (Mangum) driven with recorded API Gateway, Function URL and ALB events."""

from __future__ import annotations

import base64
import json

import pytest

from eventkit import load_event, make_event

KINDS = ["rest", "http", "http-stage", "function-url", "alb"]


def body_of(result: dict) -> dict:
    raw = result["body"]
    if result.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


def infer_json(pixels) -> str:
    return json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": pixels.tolist()}]})


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_and_health(lambda_handler, kind: str) -> None:
    for path, expected in [
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        ("/v2/models/digits/ready", {"name": "digits", "ready": True}),
    ]:
        result = lambda_handler(make_event(kind, "GET", path), None)
        assert result["statusCode"] == 200, (kind, path, result)
        assert body_of(result) == expected
    result = lambda_handler(make_event(kind, "GET", "/v2"), None)
    assert body_of(result)["extensions"] == ["binary_tensor_data"]
    assert body_of(lambda_handler(make_event(kind, "GET", "/v2/models/digits"), None))["name"] == "digits"


@pytest.mark.parametrize("kind", KINDS)
def test_infer_known_image(lambda_handler, heldout, kind: str) -> None:
    pixels, labels = heldout
    for index in range(5):
        result = lambda_handler(make_event(kind, "POST", "/v2/models/digits/infer", infer_json(pixels[index])), None)
        assert result["statusCode"] == 200, result
        outputs = {o["name"]: o for o in body_of(result)["outputs"]}
        assert outputs["label"]["data"] == [str(labels[index])]


@pytest.mark.parametrize("kind", KINDS)
def test_base64_encoded_request_body(lambda_handler, heldout, kind: str) -> None:
    pixels, labels = heldout
    event = make_event(kind, "POST", "/v2/models/digits/infer", infer_json(pixels[1]), base64=True)
    result = lambda_handler(event, None)
    assert result["statusCode"] == 200
    assert {o["name"]: o for o in body_of(result)["outputs"]}["label"]["data"] == [str(labels[1])]


@pytest.mark.parametrize("kind", ["rest", "http", "http-stage", "function-url"])
def test_gateway_request_id_is_returned(lambda_handler, kind: str) -> None:
    event = make_event(kind, "GET", "/v2/health/live")
    result = lambda_handler(event, None)
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    assert headers["x-request-id"] == event["requestContext"]["requestId"]


BAD = [
    ("/v2/models/resnet/infer", '{"inputs": []}', 404, "model 'resnet' not found; this endpoint serves 'digits'"),
    ("/v2/models/digits/infer", "{not json", 400, "request body is not valid JSON"),
    (
        "/v2/models/digits/infer",
        json.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]}),
        400,
        "unknown input 'x'",
    ),
    (
        "/v2/models/digits/infer",
        json.dumps({"inputs": [{"name": "pixels", "shape": [1, 8], "datatype": "FP32", "data": [0] * 8}]}),
        400,
        "the model expects [-1, 64]",
    ),
    (
        "/v2/models/digits/infer",
        json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP64", "data": [0] * 64}]}),
        400,
        "has datatype FP64 but the model expects FP32",
    ),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path,body,status,message", BAD, ids=["unknown-model", "malformed-json", "input-name", "shape", "datatype"])
def test_bad_input_through_each_gateway(lambda_handler, kind: str, path: str, body: str, status: int, message: str) -> None:
    result = lambda_handler(make_event(kind, "POST", path, body), None)
    assert result["statusCode"] == status
    assert message in body_of(result)["error"]


def test_named_stage_sets_root_path_for_docs(lambda_handler) -> None:
    result = lambda_handler(make_event("http-stage", "GET", "/docs"), None)
    assert result["statusCode"] == 200
    assert "/prod/openapi.json" in result["body"]


@pytest.mark.parametrize(
    "event,message",
    [
        ({"hello": "world"}, "unsupported event"),
        ([], "event must be a JSON object, got list"),
        ({"version": "2.0", "requestContext": {}}, "malformed StagedHTTPGateway event"),
    ],
)
def test_unsupported_or_truncated_events_are_400(lambda_handler, event, message: str) -> None:
    result = lambda_handler(event, None)
    assert result["statusCode"] == 400
    assert message in json.loads(result["body"])["error"]


def test_recorded_infer_event_file(lambda_handler) -> None:
    result = lambda_handler(load_event("infer-digits.json"), None)
    assert result["statusCode"] == 200
    body = body_of(result)
    assert body["id"] == "digit-4"
    assert {o["name"]: o for o in body["outputs"]}["label"]["data"] == ["4"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("host", ["[::1]:8080", "[2001:db8::7]", "example.com:notaport", "::1"])
def test_any_host_header_is_served(lambda_handler, kind: str, host: str) -> None:
    # Mangum's own Host parsing split at every colon: an IPv6 literal was a 400 "malformed event".
    event = make_event(kind, "GET", "/v2/health/ready", headers={"host": host})
    if kind == "rest":
        event["multiValueHeaders"]["host"] = [host]
    result = lambda_handler(event, None)
    assert (result["statusCode"], body_of(result)) == (200, {"ready": True})


def test_server_and_port_reads_ipv6_literals() -> None:
    from slimserve.handler.gateway import _server_and_port

    assert _server_and_port({"host": "[::1]:8080"}) == ("::1", 8080)
    assert _server_and_port({"host": "[::1]", "x-forwarded-port": "443"}) == ("::1", 443)
    assert _server_and_port({"host": "example.com:81"}) == ("example.com", 81)
    assert _server_and_port({"host": "example.com:x", "x-forwarded-port": "y"}) == ("example.com", 80)
    assert _server_and_port({}) == ("mangum", 80)


@pytest.mark.parametrize("kind", ["rest", "http"])
def test_a_lone_surrogate_in_the_path_is_a_404_with_valid_json(lambda_handler, kind: str) -> None:
    # The message quotes the path; UTF-8 has no encoding for U+D800, the JSON escape does.
    result = lambda_handler(make_event(kind, "GET", "/v2/models/\ud800x/ready"), None)
    assert result["statusCode"] == 404
    assert body_of(result) == {"error": "model '\ud800x' not found; this endpoint serves 'digits'"}
    assert "\\ud800x" in result["body"]


def test_a_request_is_served_without_an_event_loop(lambda_handler, monkeypatch) -> None:
    # The app never waits, so Mangum's cycle is stepped inline (handler/gateway.py), not on a loop.
    import asyncio

    def no_loop() -> None:
        raise AssertionError("the event loop was used")

    monkeypatch.setattr(asyncio, "get_event_loop", no_loop)
    result = lambda_handler(make_event("http", "GET", "/v2/health/live"), None)
    assert result["statusCode"] == 200 and body_of(result) == {"live": True}


def test_an_app_that_may_wait_still_runs_on_mangums_event_loop() -> None:
    import asyncio

    from slimserve.handler.gateway import make_lambda_handler

    async def waiting_app(scope, receive, send) -> None:
        request = await receive()
        await asyncio.sleep(0.001)  # a real timer: only an event loop can finish this app
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": request["body"][::-1]})

    result = make_lambda_handler(waiting_app)(make_event("http", "POST", "/echo", body="abc"), None)
    assert result["statusCode"] == 201 and result["body"] == "cba"
