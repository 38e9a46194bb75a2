"""API Gateway's own answers: what each API type sends (status, body, headers) when it refuses
a request or the integration fails, before or instead of the function's response."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from slimserve.build.local.apigw.events import ApiType, HttpResponse

GatewayErrorKind = Literal[
    "not_found",  # no route (REST: no resource or no method on it)
    "iam_missing",  # AWS_IAM route, no signature
    "jwt_missing",  # JWT route, no token
    "api_key_invalid",  # API key required, missing or unknown
    "body_too_large",  # over API Gateway's 10 MB
    "payload_too_large",  # the event is over Lambda's 6 MB synchronous payload
    "function_error",  # the function failed, or answered in a shape API Gateway refuses
    "timeout",  # the integration timeout passed first
]


@dataclass(frozen=True)
class GatewayError:
    """One of API Gateway's own answers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    error_type: str | None = None  # REST APIs name it in x-amzn-ErrorType


def _compact(message: str) -> bytes:
    # HTTP API answers and REST gateway responses ({"message":$context.error.messageString}).
    return json.dumps({"message": message}, separators=(",", ":")).encode()


def _spaced(message: str) -> bytes:
    # REST's integration failures come with a space after the colon.
    return json.dumps({"message": message}).encode()


# What each API type answers by itself. HTTP API's messages are Title Case and compact; REST
# uses its default gateway responses (docs: "Gateway response types for API Gateway").
# Sources for the less documented ones:
# - REST 10 MB body: 413 text/plain "HTTP content length exceeded 10485760 bytes."; REST event
#   over Lambda's 6 MB: 413 {"message": "Request Too Long"}, x-amzn-ErrorType
#   BadRequestException (both recorded from a deployed REST API, koki-develop/lgtm-generator#10).
# - REST function error 502 {"message": "Internal server error"} (Lambda developer guide,
#   "Handling Lambda errors with an API Gateway API"); HTTP API {"message":"Internal Server
#   Error"} (API Gateway guide, "Troubleshooting issues with HTTP API Lambda integrations").
# - JWT 401 {"message":"Unauthorized"} (API Gateway guide, "Troubleshooting issues with HTTP API
#   JWT authorizers"); REST missing/invalid API key 403 {"message":"Forbidden"}
#   ForbiddenException, missing signature 403 "Missing Authentication Token" (AWS knowledge
#   center, "How do I troubleshoot HTTP 403 errors from API Gateway?"); HTTP API unsigned request
#   to an AWS_IAM route 403 {"message":"Forbidden"}.
# REST's body_too_large answer names the limit: see answer_for.
_GATEWAY_ERRORS: dict[ApiType, dict[GatewayErrorKind, GatewayError]] = {
    "http": {
        "not_found": GatewayError(404, _compact("Not Found")),
        "iam_missing": GatewayError(403, _compact("Forbidden")),
        "jwt_missing": GatewayError(401, _compact("Unauthorized")),
        "api_key_invalid": GatewayError(403, _compact("Forbidden")),  # HTTP APIs have no keys
        "body_too_large": GatewayError(413, _compact("Request Entity Too Large")),
        "payload_too_large": GatewayError(413, _compact("Request Entity Too Large")),
        "function_error": GatewayError(502, _compact("Internal Server Error")),
        "timeout": GatewayError(503, _compact("Service Unavailable")),
    },
    "rest": {
        "not_found": GatewayError(
            403,
            _compact("Missing Authentication Token"),
            error_type="MissingAuthenticationTokenException",
        ),
        "iam_missing": GatewayError(
            403,
            _compact("Missing Authentication Token"),
            error_type="MissingAuthenticationTokenException",
        ),
        "jwt_missing": GatewayError(
            401, _compact("Unauthorized"), error_type="UnauthorizedException"
        ),
        "api_key_invalid": GatewayError(
            403, _compact("Forbidden"), error_type="ForbiddenException"
        ),
        "payload_too_large": GatewayError(
            413, _spaced("Request Too Long"), error_type="BadRequestException"
        ),
        "function_error": GatewayError(
            502, _spaced("Internal server error"), error_type="InternalServerErrorException"
        ),
        "timeout": GatewayError(504, _spaced("Endpoint request timed out")),
    },
}


def answer_for(api_type: ApiType, kind: GatewayErrorKind, *, max_body_bytes: int) -> GatewayError:
    """What ``api_type`` answers for ``kind``; ``max_body_bytes`` is the API's body limit."""
    if api_type == "rest" and kind == "body_too_large":
        # REQUEST_TOO_LARGE is the one gateway response that is plain text (and not customizable).
        return GatewayError(
            413,
            f"HTTP content length exceeded {max_body_bytes} bytes.".encode(),
            content_type="text; charset=utf-8",
        )
    return _GATEWAY_ERRORS[api_type][kind]


def incomplete_signature(problem: str) -> GatewayError:
    """REST's answer to an Authorization header that is not a complete SigV4 one."""
    return GatewayError(403, _compact(problem), error_type="IncompleteSignatureException")


def error_response(api_type: ApiType, answer: GatewayError, request_id: str) -> HttpResponse:
    """``answer`` with the headers ``api_type`` sends with its own answers."""
    headers = [("content-type", answer.content_type)]
    if api_type == "rest":
        headers.append(("x-amzn-RequestId", request_id))
        if answer.error_type:
            headers.append(("x-amzn-ErrorType", answer.error_type))
    else:
        headers.append(("apigw-requestid", request_id))
    return HttpResponse(answer.status, headers, answer.body)
