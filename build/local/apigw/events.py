"""API Gateway -> Lambda: an HTTP request becomes a Lambda proxy event, as pure functions (no
sockets, no processes): HTTP API payload 2.0, HTTP API payload 1.0, or REST API (which always
uses the 1.0 shape). The way back (the function's result -> HTTP response) is responses.py.

Facts encoded here (see docs of API Gateway; measured behaviour noted where the docs are silent):
- HTTP API lower-cases header names, joins repeated headers and query parameters with commas
  (2.0), moves the Cookie header into ``cookies`` (2.0) and base64-encodes every request body
  whose Content-Type is not text/*, application/json, application/xml or application/javascript
  (a missing Content-Type and form posts count as binary).
- REST API keeps header case and base64-encodes a request body only when its Content-Type
  matches ``binaryMediaTypes`` (``rest_treats_as_binary``).
- What the authorizer learnt reaches the function: HTTP API 2.0 puts it in
  ``requestContext.authorizer`` (``jwt.claims``/``scopes``, or ``iam``), payload 1.0 in
  ``requestContext.identity`` (``accessKey``, ``apiKey``, ``apiKeyId``). Locally nothing is
  verified, so only what the request itself carries is filled in.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

ApiType = Literal["http", "rest"]
PayloadFormat = Literal["1.0", "2.0"]

# Values a deployed API shows; local stand-ins keep the same shape.
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_API_ID = "local"
LOCAL_REGION = "us-east-1"

_HTTP_API_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})
# The media type a REST API assumes for a request without Content-Type (or Accept).
REST_DEFAULT_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class HttpRequest:
    """One request as it reached the gateway (path still carries a stage prefix, if any)."""

    method: str
    path: str  # percent-encoded, as sent
    query: str  # raw query string without "?"
    headers: Sequence[tuple[str, str]]  # as sent, in order, repeated names allowed
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True)
class AuthContext:
    """What the gateway's authorization step found in the request (nothing is verified
    locally): the SigV4 access key id, the JWT's claims (decoded, unverified), the API key."""

    kind: Literal["iam", "jwt", "api_key"]
    access_key: str | None = None
    claims: Mapping[str, str] = field(default_factory=dict)
    scopes: tuple[str, ...] | None = None
    api_key: str | None = None
    api_key_id: str | None = None


@dataclass(frozen=True)
class RouteMatch:
    """What the router decided: the route key / resource and the extracted path parameters."""

    route_key: str  # "$default" or "ANY /{proxy+}" (HTTP API routeKey)
    resource: str  # REST "resource": "/{proxy+}"; for "$default" the request path
    path_parameters: dict[str, str]


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def media_type_matches(candidate: str, patterns: Sequence[str]) -> bool:
    """Match a media type against binaryMediaTypes entries as REST APIs do: an entry matches
    its own type, ``type/*`` every subtype of that type, ``*/*`` everything. A wildcard type
    before a concrete subtype (``*/png``) matches nothing, and a wildcard in the candidate
    matches only an entry that covers it (``Accept: image/*`` is not ``image/png``): measured
    against AWS by LocalStack's test_aws_proxy_binary_response."""
    kind, slash, sub = candidate.partition("/")
    if not (kind and slash and sub):
        return False
    for pattern in patterns:
        p_kind, _, p_sub = media_type(pattern).partition("/")
        if p_kind == "*":
            if p_sub == "*":
                return True
        elif p_kind == kind and p_sub in ("*", sub):
            return True
    return False


def rest_treats_as_binary(header_value: str | None, binary_media_types: Sequence[str]) -> bool:
    """Whether a REST API treats a request's Content-Type, or the first type of its Accept
    (``header_value``), as binary. A request without Content-Type is taken as
    application/json (API Gateway's docs: "Method request behavior for payloads without
    mapping templates"); one without Accept is assumed to be taken the same way (not
    documented). Either way only a list covering application/json (``*/*``,
    ``application/*``) makes such a request binary."""
    first = media_type((header_value or "").split(",", 1)[0]) or REST_DEFAULT_MEDIA_TYPE
    return media_type_matches(first, binary_media_types)


def http_api_treats_as_text(content_type: str | None) -> bool:
    kind = media_type(content_type)
    return kind.startswith("text/") or kind in _HTTP_API_TEXT_TYPES


def encode_body(body: bytes, as_base64: bool) -> tuple[str | None, bool]:
    """Return (event body, isBase64Encoded); an empty body is ``None`` as API Gateway sends it."""
    if not body:
        return None, False
    if as_base64:
        return base64.b64encode(body).decode("ascii"), True
    # A text body travels as a JSON string, which holds Unicode only: API Gateway converts it to
    # a "UTF8-encoded string" (REST docs, "Content type conversions in API Gateway"), and bytes
    # that are not UTF-8 arrive as U+FFFD (measured on REST; HTTP API documents only that
    # non-text types are base64-encoded). Bytes reach the function unchanged only base64'd.
    return body.decode("utf-8", errors="replace"), False


def new_request_id() -> str:
    return str(uuid.uuid4())


def new_trace_id(now: float | None = None) -> str:
    """An X-Ray trace header in the format Lambda passes on."""
    epoch = int(now if now is not None else time.time())
    return f"Root=1-{epoch:08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


def _clf_time(epoch_ms: int) -> str:
    # API Gateway's requestContext.time: "12/Mar/2020:19:03:58 +0000"
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000))


def _domain(request: HttpRequest) -> str:
    return request.header("host") or f"{LOCAL_API_ID}.execute-api.{LOCAL_REGION}.amazonaws.com"


def _host_port(host: str) -> str | None:
    """The port of a Host header (``example.com:8080``, ``[::1]:8080``), None without one."""
    if host.startswith("["):  # an IPv6 literal: its colons are not the port's
        _, _, after = host.partition("]")
        port = after[1:] if after.startswith(":") else ""
    else:
        _, _, port = host.rpartition(":")
    return port if port.isdigit() else None


def _gateway_added_headers(request: HttpRequest, trace_id: str) -> list[tuple[str, str]]:
    """Headers API Gateway adds on its way to the integration."""
    port = _host_port(request.header("host") or "") or "80"
    forwarded = request.header("x-forwarded-for")
    added = [
        ("x-amzn-trace-id", trace_id),
        (
            "x-forwarded-for",
            f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip,
        ),
        ("x-forwarded-port", port),
        # The local front speaks plain HTTP; saying "https" would make apps build wrong URLs.
        ("x-forwarded-proto", "http"),
    ]
    names = {name for name, _ in added}
    kept = [(k, v) for k, v in request.headers if k.lower() not in names]
    return kept + added


def build_http_api_v2_event(
    request: HttpRequest,
    match: RouteMatch,
    *,
    stage: str,
    request_id: str,
    trace_id: str,
    now_ms: int,
    stage_variables: Mapping[str, str] | None = None,
    auth: AuthContext | None = None,
) -> dict[str, Any]:
    """API Gateway HTTP API, payload format 2.0."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in _gateway_added_headers(request, trace_id):
        lowered = name.lower()
        if lowered == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[lowered] = f"{headers[lowered]},{value}" if lowered in headers else value

    query: dict[str, str] = {}
    for key, value in parse_qsl(request.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value

    body, is_base64 = encode_body(
        request.body, as_base64=not http_api_treats_as_text(request.header("content-type"))
    )
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route_key,
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": LOCAL_API_ID,
            "domainName": _domain(request),
            "domainPrefix": _domain(request).split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": unquote(request.path),
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": request.header("user-agent") or "",
            },
            "requestId": request_id,
            "routeKey": match.route_key,
            "stage": stage,
            "time": _clf_time(now_ms),
            "timeEpoch": now_ms,
        },
        "isBase64Encoded": is_base64,
    }
    # Absent, not empty, when there is nothing: that is what API Gateway sends.
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if match.path_parameters:
        event["pathParameters"] = dict(match.path_parameters)
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    if body is not None:
        event["body"] = body
    authorizer = _v2_authorizer(auth)
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return event


def _v2_authorizer(auth: AuthContext | None) -> dict[str, Any] | None:
    if auth is None:
        return None
    if auth.kind == "jwt":
        scopes = list(auth.scopes) if auth.scopes is not None else None
        return {"jwt": {"claims": dict(auth.claims), "scopes": scopes}}
    if auth.kind == "iam":
        # Who the caller is would come from verifying the signature: not done locally.
        return {
            "iam": {
                "accessKey": auth.access_key,
                "accountId": None,
                "callerId": None,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": None,
                "userId": None,
            }
        }
    return None


def build_v1_event(
    request: HttpRequest,
    match: RouteMatch,
    *,
    api_type: ApiType,
    stage: str,
    stage_prefix: str,
    request_id: str,
    trace_id: str,
    now_ms: int,
    binary_media_types: Sequence[str] = (),
    stage_variables: Mapping[str, str] | None = None,
    auth: AuthContext | None = None,
) -> dict[str, Any]:
    """Payload format 1.0: REST API proxy integration, or HTTP API with format 1.0.

    ``request.path`` includes ``stage_prefix`` (e.g. ``/prod``) when the API has a named stage;
    REST passes the path without it and the full one in requestContext.path.
    """
    added = _gateway_added_headers(request, trace_id)
    if api_type == "http":
        added = [(k.lower(), v) for k, v in added]
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in added:
        headers[name] = value  # the last one wins in the single-value map
        multi_headers.setdefault(name, []).append(value)

    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.query, keep_blank_values=True):
        query[key] = value
        multi_query.setdefault(key, []).append(value)

    content_type = request.header("content-type")
    if api_type == "rest":
        as_base64 = rest_treats_as_binary(content_type, binary_media_types)
    else:
        as_base64 = not http_api_treats_as_text(content_type)
    body, is_base64 = encode_body(request.body, as_base64)

    decoded_path = unquote(request.path)
    resource_path = decoded_path
    if stage_prefix:
        resource_path = decoded_path[len(stage_prefix) :] or "/"
    event: dict[str, Any] = {
        "resource": match.resource,
        "path": resource_path if api_type == "rest" else decoded_path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(match.path_parameters) or None,
        "stageVariables": dict(stage_variables) if stage_variables else None,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": LOCAL_API_ID,
            "domainName": _domain(request),
            "domainPrefix": _domain(request).split(".", 1)[0],
            "extendedRequestId": request_id,
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoIdentityId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": request.header("user-agent") or "",
                "userArn": None,
            },
            "path": decoded_path,
            "protocol": request.protocol,
            "requestId": request_id,
            "requestTime": _clf_time(now_ms),
            "requestTimeEpoch": now_ms,
            "resourceId": "local",
            "resourcePath": match.resource,
            "stage": stage,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }
    if auth is not None:
        identity = event["requestContext"]["identity"]
        if auth.access_key is not None:
            identity["accessKey"] = auth.access_key
        if auth.api_key is not None:
            identity["apiKey"] = auth.api_key
            identity["apiKeyId"] = auth.api_key_id
        if auth.kind == "jwt":
            # HTTP API with payload 1.0 passes the JWT authorizer's result here.
            event["requestContext"]["authorizer"] = {
                "claims": dict(auth.claims),
                "scopes": list(auth.scopes) if auth.scopes is not None else None,
            }
    if api_type == "http":
        event["version"] = "1.0"
        event["requestContext"]["routeKey"] = match.route_key
    return event
