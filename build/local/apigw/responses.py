"""Lambda -> API Gateway: the function's JSON result becomes an HTTP response, with API
Gateway's rules for what counts as a malformed result (502) and when a base64 body is decoded.

- HTTP API 2.0: a result that is valid JSON but not an object with ``statusCode`` is sent as a
  200 application/json body. Payload 1.0 has no such inference.
- REST API decodes a base64 response only when the request's first Accept type matches
  ``binaryMediaTypes`` (``rest_treats_as_binary``; ``*/*`` matches every Accept).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from slimserve.build.local.apigw.events import ApiType, HttpResponse, rest_treats_as_binary


class InvalidLambdaResponse(ValueError):
    """The function answered, but not in a shape API Gateway accepts (API Gateway: 502)."""


def _header_value(value: Any) -> str:
    # API Gateway accepts scalars and stringifies them; objects and lists are malformed.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise InvalidLambdaResponse(f"header value {value!r} is not a string")


def _status(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidLambdaResponse("statusCode must be an integer")
    try:
        status = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidLambdaResponse(f"statusCode {value!r} is not an integer") from exc
    if not 100 <= status <= 599:
        raise InvalidLambdaResponse(f"statusCode {status} is out of range")
    return status


def _body_bytes(result: Mapping[str, Any], decode_base64: bool) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise InvalidLambdaResponse("body must be a string")
    if result.get("isBase64Encoded") is True and decode_base64:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidLambdaResponse("isBase64Encoded is true but body is not base64") from exc
    return body.encode("utf-8")


def http_response_from_v2_result(payload: bytes) -> HttpResponse:
    """Translate a function result for HTTP API payload 2.0."""
    try:
        result = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidLambdaResponse("the function result is not JSON") from exc
    if not isinstance(result, dict) or "statusCode" not in result:
        # HTTP API 2.0 infers a 200 JSON response from any other valid JSON.
        return HttpResponse(200, [("content-type", "application/json")], payload)

    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise InvalidLambdaResponse("headers must be an object")
    for name, value in raw_headers.items():
        headers.append((str(name), _header_value(value)))
    # multiValueHeaders belong to payload 1.0; HTTP API ignores them in a 2.0 result.
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise InvalidLambdaResponse("cookies must be a list of strings")
    headers.extend(("set-cookie", cookie) for cookie in cookies)
    return HttpResponse(_status(result["statusCode"]), headers, _body_bytes(result, True))


def http_response_from_v1_result(
    payload: bytes,
    *,
    api_type: ApiType,
    accept: str | None,
    binary_media_types: Sequence[str] = (),
) -> HttpResponse:
    """Translate a function result for payload 1.0 (REST API, or HTTP API with format 1.0)."""
    try:
        result = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidLambdaResponse("the function result is not JSON") from exc
    if not isinstance(result, dict) or "statusCode" not in result:
        raise InvalidLambdaResponse("payload 1.0 results need a statusCode")

    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise InvalidLambdaResponse("headers and multiValueHeaders must be objects")
    headers: list[tuple[str, str]] = []
    multi_names = {str(name).lower() for name in multi}
    for name, value in single.items():
        if str(name).lower() not in multi_names:
            headers.append((str(name), _header_value(value)))
    for name, values in multi.items():
        if not isinstance(values, list):
            raise InvalidLambdaResponse("multiValueHeaders values must be lists")
        headers.extend((str(name), _header_value(value)) for value in values)

    if api_type == "rest":
        # Only the first Accept type counts (documented REST API behaviour).
        decode = rest_treats_as_binary(accept, binary_media_types)
    else:
        decode = True
    return HttpResponse(_status(result["statusCode"]), headers, _body_bytes(result, decode))
