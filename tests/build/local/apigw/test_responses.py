"""The function's result as API Gateway sends it on (build/local/apigw/responses.py)."""

from __future__ import annotations

import base64
import json

import pytest

from slimserve.build.local.apigw.events import media_type_matches, rest_treats_as_binary
from slimserve.build.local.apigw.responses import (
    InvalidLambdaResponse,
    http_response_from_v1_result,
    http_response_from_v2_result,
)


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
    assert not media_type_matches("application", ["*/*"])
    # As AWS does (LocalStack's AWS-validated test_aws_proxy_binary_response): a wildcard type
    # before a concrete subtype matches nothing, and a wildcard in the candidate only what
    # covers it.
    assert not media_type_matches("random/test", ["*/test"])
    assert not media_type_matches("image/*", ["image/png"])
    assert not media_type_matches("*/*", ["image/png", "application/*"])
    assert media_type_matches("application/*", ["application/*"])
    assert media_type_matches("*/*", ["*/*"])


@pytest.mark.parametrize(
    ("header", "types", "binary"),
    [
        (None, ["application/octet-stream"], False),  # taken as application/json
        (None, ["*/*"], True),
        (None, ["application/*"], True),
        ("", ["*/*"], True),
        ("application/json, application/octet-stream", ["application/octet-stream"], False),
        ("application/octet-stream;q=0.9, text/html", ["application/octet-stream"], True),
        ("text/html,application/xhtml+xml,*/*;q=0.8", ["*/*"], True),
        ("*/*", ["application/octet-stream"], False),
        ("*/*", ["*/*", "application/octet-stream"], True),
    ],
)
def test_rest_binary_decision_uses_the_first_type_or_application_json(
    header: str | None, types: list[str], binary: bool
) -> None:
    assert rest_treats_as_binary(header, types) is binary


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html, */*;q=0.8"])
def test_rest_with_every_type_binary_decodes_for_any_accept(accept: str | None) -> None:
    """slimserve's REST stack lists */*: clients that do not name a binary type first (KServe,
    tritonclient: no Accept at all) still get bytes, and text answers pass through."""
    binary = json.dumps(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
    ).encode()
    text = json.dumps({"statusCode": 200, "body": '{"a": "\u00e9"}', "isBase64Encoded": False}).encode()
    kinds = ("*/*", "application/octet-stream")
    assert http_response_from_v1_result(binary, api_type="rest", accept=accept, binary_media_types=kinds).body == b"\x00\xff"
    assert http_response_from_v1_result(text, api_type="rest", accept=accept, binary_media_types=kinds).body == '{"a": "\u00e9"}'.encode()
