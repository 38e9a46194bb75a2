"""The API-Gateway-shaped HTTP front of a local run.

``GatewayConfig`` says what the deployed API looks like (HTTP or REST API, payload format,
stage, routes and their authorization, API keys, binary media types, timeouts, the function's
memory and environment). ``slimserve local`` fills it from the CloudFormation template the
stack synthesizes (build/local/apigw/template.py); ``GatewayConfig.from_manifest`` gives the defaults.

``Gateway.handle`` does what API Gateway does with one request, in API Gateway's order: body
limit, stage, route, authorization (IAM signature / JWT / API key), event, Lambda's payload
limit, invoke with the integration timeout, response translation, and API Gateway's own error
answers (status, body and headers as each API type sends them). ``GatewayHttpServer`` puts it
on a socket.

Authorization is checked for shape only: a SigV4 ``Authorization`` header (or presigned query)
with every part present, a bearer token, an ``x-api-key`` equal to a local key. Signatures and
tokens are not verified locally.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote

from slimserve.build.local.apigw.events import (
    ApiType,
    AuthContext,
    HttpRequest,
    HttpResponse,
    InvalidLambdaResponse,
    PayloadFormat,
    RouteMatch,
    build_http_api_v2_event,
    build_v1_event,
    http_response_from_v1_result,
    http_response_from_v2_result,
    new_request_id,
    new_trace_id,
)
from slimserve.build.local.runtime_api import MAX_REQUEST_PAYLOAD_BYTES, InvocationResult

MAX_GATEWAY_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload quota (REST and HTTP APIs)
HTTP_API_MAX_TIMEOUT_S = 30.0  # HTTP API integrations: TimeoutInMillis default and maximum
REST_API_DEFAULT_TIMEOUT_S = 29.0  # REST API integrations: TimeoutInMillis default
_DRAIN_LIMIT_BYTES = 4 * MAX_GATEWAY_BODY_BYTES  # read and drop up to this, then hang up
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}

# Who may call a route: anyone, SigV4-signed callers (AWS_IAM), bearers of a JWT (HTTP API).
Authorization = Literal["none", "iam", "jwt"]
SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"

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
        # REQUEST_TOO_LARGE is the one gateway response that is plain text (and not customizable).
        "body_too_large": GatewayError(
            413,
            f"HTTP content length exceeded {MAX_GATEWAY_BODY_BYTES} bytes.".encode(),
            content_type="text; charset=utf-8",
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


@dataclass(frozen=True)
class Route:
    """An HTTP API route key ("GET /items/{id}", "ANY /{proxy+}", "$default") or a REST method
    on a resource (same notation), with who may call it."""

    method: str  # "ANY" or an HTTP method, upper case
    path: str  # "/items/{id}", "/{proxy+}", or "$default"
    authorization: Authorization = "none"
    api_key_required: bool = False  # REST only: x-api-key must name a key of a usage plan

    @classmethod
    def parse(
        cls, key: str, authorization: Authorization = "none", api_key_required: bool = False
    ) -> Route:
        key = key.strip()
        if key == "$default":
            return cls("ANY", "$default", authorization, api_key_required)
        method, _, path = key.partition(" ")
        if not path.startswith("/"):
            raise ValueError(f"route key {key!r} is not 'METHOD /path' or '$default'")
        return cls(method.upper(), path, authorization, api_key_required)

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    def match_path(self, path: str) -> dict[str, str] | None:
        """Path parameters when this route's path takes the (decoded) path, else None."""
        if self.path == "$default":
            return {}
        wanted = [s for s in path.split("/") if s]
        template = self.segments
        params: dict[str, str] = {}
        for index, part in enumerate(template):
            greedy = re.fullmatch(r"\{(\w+)\+\}", part)
            if greedy:
                if index != len(template) - 1 or index >= len(wanted):
                    return None  # greedy variables are last and take one segment at least
                params[greedy.group(1)] = "/".join(wanted[index:])
                return params
            if index >= len(wanted):
                return None
            variable = re.fullmatch(r"\{(\w+)\}", part)
            if variable:
                params[variable.group(1)] = wanted[index]
            elif part != wanted[index]:
                return None
        return params if len(wanted) == len(template) else None

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route takes (method, decoded path), else None."""
        if self.method not in ("ANY", method):
            return None
        return self.match_path(path)

    def priority(self) -> tuple[int, int, int, int, int]:
        """Smaller wins: exact paths, then variables, then greedy; a method before ANY;
        $default last (HTTP API's most-specific-match rule)."""
        greedy = sum(1 for s in self.segments if s.endswith("+}"))
        variables = sum(1 for s in self.segments if s.startswith("{"))
        return (
            self.path == "$default",
            greedy,
            variables,
            -len(self.segments),
            self.method == "ANY",
        )

    def resource_rank(self) -> tuple[int, ...]:
        """REST resource precedence, level by level: a literal segment before a {variable}
        before a {greedy+} one (smaller wins)."""
        return tuple(
            2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in self.segments
        )


def _select_http(
    routes: tuple[Route, ...], method: str, path: str
) -> tuple[Route, dict[str, str]] | None:
    candidates = []
    for route in routes:
        params = route.match(method, path)
        if params is not None:
            candidates.append((route.priority(), route, params))
    if not candidates:
        return None
    _, route, params = min(candidates, key=lambda item: item[0])
    return route, params


def _select_rest(
    routes: tuple[Route, ...], method: str, path: str
) -> tuple[Route, dict[str, str]] | None:
    """REST APIs pick the resource first (most specific path), then the method on it: a
    resource without this method (and without ANY) does not fall back to a greedy sibling."""
    resources: dict[str, tuple[tuple[int, ...], dict[str, str]]] = {}
    for route in routes:
        if route.path not in resources:
            params = route.match_path(path)
            if params is not None:
                resources[route.path] = (route.resource_rank(), params)
    if not resources:
        return None
    resource = min(resources, key=lambda name: resources[name][0])
    params = resources[resource][1]
    on_resource = [r for r in routes if r.path == resource]
    for wanted in (method, "ANY"):
        for route in on_resource:
            if route.method == wanted:
                return route, params
    return None


def match_route(
    routes: tuple[Route, ...], method: str, path: str, *, api_type: ApiType = "http"
) -> RouteMatch | None:
    selected = (_select_rest if api_type == "rest" else _select_http)(routes, method, path)
    if selected is None:
        return None
    route, params = selected
    resource = path if route.path == "$default" else route.path
    return RouteMatch(route.key, resource, params)


def _freeze(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(mapping or {})


@dataclass(frozen=True)
class GatewayConfig:
    """What the deployed API and function look like, as far as a local run can copy them."""

    api_type: ApiType = "http"
    payload_format: PayloadFormat = "2.0"
    stage: str = "$default"  # HTTP API "$default" has no path prefix; named stages do
    routes: tuple[Route, ...] = (Route("ANY", "$default"),)
    # name -> value of the API keys x-api-key may carry (local values; AWS generates its own)
    api_keys: Mapping[str, str] = field(default_factory=dict)
    binary_media_types: tuple[str, ...] = ()  # REST API only
    integration_timeout_s: float = HTTP_API_MAX_TIMEOUT_S
    function_timeout_s: float = 20.0
    memory_mb: int = 1024
    environment: Mapping[str, str] = field(default_factory=dict)
    stage_variables: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = MAX_GATEWAY_BODY_BYTES
    source: str = "defaults"  # where this came from, for the startup banner
    notes: tuple[str, ...] = ()  # what could not be copied from the source, and why
    # Function environment variables of the source that are deliberately not set locally.
    skipped_environment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.api_type not in ("http", "rest"):
            raise ValueError(f"api_type must be 'http' or 'rest', not {self.api_type!r}")
        if self.payload_format not in ("1.0", "2.0"):
            raise ValueError(f"payload_format must be '1.0' or '2.0', not {self.payload_format!r}")
        if self.api_type == "rest" and self.payload_format != "1.0":
            raise ValueError("REST APIs only send payload format 1.0")
        if self.api_type == "rest" and self.stage == "$default":
            raise ValueError("REST APIs have named stages (e.g. 'prod')")
        if not self.routes:
            raise ValueError("at least one route is needed")
        if self.integration_timeout_s <= 0 or self.function_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        for route in self.routes:
            if route.authorization not in ("none", "iam", "jwt"):
                raise ValueError(
                    f"route {route.key}: unknown authorization {route.authorization!r}"
                )
            if self.api_type == "rest" and route.authorization == "jwt":
                raise ValueError("REST APIs have no JWT authorizers (HTTP APIs do)")
            if self.api_type == "http" and route.api_key_required:
                raise ValueError("HTTP APIs have no API keys (REST APIs do)")
        object.__setattr__(self, "api_keys", _freeze(self.api_keys))
        object.__setattr__(self, "environment", _freeze(self.environment))
        object.__setattr__(self, "stage_variables", _freeze(self.stage_variables))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "skipped_environment", tuple(self.skipped_environment))

    @classmethod
    def from_manifest(cls, manifest: Any, *, api_type: ApiType = "http") -> GatewayConfig:
        """Defaults for a slimserve deployment: the manifest's runtime settings and an open
        API of the given type (HTTP API: payload 2.0, $default stage and route)."""
        runtime = manifest.runtime
        if api_type == "rest":
            # What aws_apigateway.LambdaRestApi creates: ANY on / and on /{proxy+}, stage prod.
            return cls(
                api_type="rest",
                payload_format="1.0",
                stage="prod",
                routes=(Route("ANY", "/"), Route("ANY", "/{proxy+}")),
                integration_timeout_s=REST_API_DEFAULT_TIMEOUT_S,
                function_timeout_s=float(runtime.timeout_s),
                memory_mb=runtime.memory_mb,
                source="manifest defaults",
            )
        return cls(
            function_timeout_s=float(runtime.timeout_s),
            memory_mb=runtime.memory_mb,
            source="manifest defaults",
        )

    @property
    def stage_prefix(self) -> str:
        """Path prefix the stage adds to URLs ("" for HTTP API's $default stage)."""
        return "" if self.stage == "$default" else f"/{self.stage}"

    @property
    def auth_summary(self) -> str:
        """Who may call, e.g. "IAM (SigV4)", "JWT", "API key", "IAM (SigV4) + API key", "none"."""
        kinds = {route.authorization for route in self.routes}
        parts = [label for kind, label in (("iam", "IAM (SigV4)"), ("jwt", "JWT")) if kind in kinds]
        if any(route.api_key_required for route in self.routes):
            parts.append("API key")
        summary = " + ".join(parts) or "none"
        mixed = len(kinds) > 1 or len({route.api_key_required for route in self.routes}) > 1
        return f"{summary} (varies by route)" if mixed and parts else summary

    def describe(self) -> str:
        api = "HTTP API" if self.api_type == "http" else "REST API"
        return f"{api}, payload {self.payload_format}, stage {self.stage}, auth {self.auth_summary}"


@dataclass(frozen=True)
class GatewayReply:
    response: HttpResponse
    detail: str = ""  # why the gateway answered this way, for the local log
    request_id: str = ""


SubmitEvent = Callable[[bytes, float], "Future[InvocationResult | None]"]


# --- authorization, by shape -------------------------------------------------------------------


def sigv4_problem(request: HttpRequest) -> str | None:
    """None when the request is SigV4-shaped (``Authorization: AWS4-HMAC-SHA256 Credential=...,
    SignedHeaders=..., Signature=...`` plus X-Amz-Date or Date, or a presigned query string);
    else what a REST API answers (IncompleteSignatureException) about the header."""
    query = parse_qs(request.query)
    presigned = (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    )
    if request.header("authorization") is None and all(query.get(name) for name in presigned):
        return None
    value = (request.header("authorization") or "").strip()
    algorithm, _, rest = value.partition(" ")
    params: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            return (
                f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization "
                f"header: '{value}'."
            )
        name, _, item = part.partition("=")
        params[name.strip()] = item.strip()
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name) or algorithm != SIGV4_ALGORITHM
    ]
    if request.header("x-amz-date") is None and request.header("date") is None:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        return " ".join(problems) + f" Authorization={value}"
    return None


def _sigv4_access_key(request: HttpRequest) -> str | None:
    match = re.search(r"Credential=([^/,\s]+)", request.header("authorization") or "")
    if match:
        return match.group(1)
    credential = parse_qs(request.query).get("X-Amz-Credential")
    return credential[0].split("/", 1)[0] if credential else None


def _claim_text(value: Any) -> str:
    # HTTP API hands claims to the function as strings; arrays as "[a b]".
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict,)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def jwt_claims(token: str) -> dict[str, str]:
    """The claims of a JWT, decoded WITHOUT verification ({} when it is not a JWT)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(claims, dict):
        return {}
    return {str(name): _claim_text(value) for name, value in claims.items()}


class Gateway:
    """API Gateway's request handling, without sockets. ``submit(payload, wait_s)`` starts one
    invocation and returns a future; ``wait_s`` is how long it may wait for a free
    environment."""

    def __init__(self, config: GatewayConfig, submit: SubmitEvent) -> None:
        self.config = config
        self._submit = submit

    def error(
        self,
        kind: GatewayErrorKind,
        request_id: str,
        detail: str = "",
        *,
        answer: GatewayError | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> GatewayReply:
        answer = answer or _GATEWAY_ERRORS[self.config.api_type][kind]
        if kind == "body_too_large" and self.config.api_type == "rest":
            text = f"HTTP content length exceeded {self.config.max_body_bytes} bytes."
            answer = GatewayError(answer.status, text.encode(), answer.content_type)
        reply_headers = [("content-type", answer.content_type)]
        if self.config.api_type == "rest":
            reply_headers.append(("x-amzn-RequestId", request_id))
            if answer.error_type:
                reply_headers.append(("x-amzn-ErrorType", answer.error_type))
        else:
            reply_headers.append(("apigw-requestid", request_id))
        reply_headers.extend(headers or [])
        message = detail or answer.body.decode("utf-8", "replace")
        return GatewayReply(
            HttpResponse(answer.status, reply_headers, answer.body), message, request_id
        )

    def _not_found(self, request: HttpRequest, request_id: str, detail: str) -> GatewayReply:
        if self.config.api_type == "rest" and request.header("authorization") is not None:
            # REST reads any Authorization header as a SigV4 one before it gives up on the route.
            problem = sigv4_problem(request)
            if problem is not None:
                answer = GatewayError(
                    403, _compact(problem), error_type="IncompleteSignatureException"
                )
                return self.error("not_found", request_id, detail, answer=answer)
        return self.error("not_found", request_id, detail)

    def _authorize(
        self, route: Route, request: HttpRequest, request_id: str
    ) -> GatewayReply | AuthContext | None:
        """An error reply, or what the authorizers found (None: an open route)."""
        config = self.config
        auth: AuthContext | None = None
        if route.authorization == "iam":
            if request.header("authorization") is None and sigv4_problem(request) is not None:
                return self.error("iam_missing", request_id, "AWS_IAM route, request not signed")
            problem = sigv4_problem(request)
            if problem is not None:
                if config.api_type == "rest":
                    answer = GatewayError(
                        403, _compact(problem), error_type="IncompleteSignatureException"
                    )
                    return self.error("iam_missing", request_id, problem, answer=answer)
                return self.error("iam_missing", request_id, f"not a SigV4 signature: {problem}")
            auth = AuthContext("iam", access_key=_sigv4_access_key(request))
        elif route.authorization == "jwt":
            header = (request.header("authorization") or "").strip()
            token = header[7:].strip() if header.lower().startswith("bearer ") else header
            if not token:
                return self.error("jwt_missing", request_id, "JWT route, no bearer token")
            auth = AuthContext("jwt", claims=jwt_claims(token))
        if route.api_key_required:
            sent = request.header("x-api-key")
            names = [name for name, value in config.api_keys.items() if sent and value == sent]
            if not names:
                why = "no x-api-key header" if not sent else "x-api-key is not a key of this stage"
                return self.error("api_key_invalid", request_id, why)
            if auth is None:
                auth = AuthContext("api_key", api_key=sent, api_key_id=names[0])
            else:
                auth = AuthContext(
                    auth.kind, auth.access_key, auth.claims, auth.scopes, sent, names[0]
                )
        return auth

    def handle(self, request: HttpRequest, *, body_too_large: bool = False) -> GatewayReply:
        config = self.config
        request_id = new_request_id()
        if body_too_large or len(request.body) > config.max_body_bytes:
            return self.error("body_too_large", request_id, "body over API Gateway's 10 MB limit")

        path = unquote(request.path)
        prefix = config.stage_prefix
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                return self._not_found(request, request_id, f"path is outside stage {config.stage}")
            path = path[len(prefix) :] or "/"
        select = _select_rest if config.api_type == "rest" else _select_http
        selected = select(config.routes, request.method, path)
        if selected is None:
            return self._not_found(request, request_id, "no route matches")
        route, params = selected
        match = RouteMatch(route.key, path if route.path == "$default" else route.path, params)
        authorized = self._authorize(route, request, request_id)
        if isinstance(authorized, GatewayReply):
            return authorized

        now_ms = int(time.time() * 1000)
        trace_id = new_trace_id()
        if config.api_type == "http" and config.payload_format == "2.0":
            event = build_http_api_v2_event(
                request,
                match,
                stage=config.stage,
                request_id=request_id,
                trace_id=trace_id,
                now_ms=now_ms,
                stage_variables=config.stage_variables,
                auth=authorized,
            )
        else:
            event = build_v1_event(
                request,
                match,
                api_type=config.api_type,
                stage=config.stage,
                stage_prefix=prefix,
                request_id=request_id,
                trace_id=trace_id,
                now_ms=now_ms,
                binary_media_types=config.binary_media_types,
                stage_variables=config.stage_variables,
                auth=authorized,
            )
        payload = json.dumps(event, separators=(",", ":")).encode()
        if len(payload) > MAX_REQUEST_PAYLOAD_BYTES:
            return self.error(
                "payload_too_large",
                request_id,
                f"event is {len(payload)} bytes, over Lambda's {MAX_REQUEST_PAYLOAD_BYTES}",
            )

        started = time.monotonic()
        future = self._submit(payload, config.integration_timeout_s)
        try:
            remaining = config.integration_timeout_s - (time.monotonic() - started)
            result = future.result(timeout=max(remaining, 0.0))
        except FutureTimeout:
            # The invocation goes on in the background, as it does on AWS.
            return self.error("timeout", request_id, "integration timeout")
        if result is None:
            return self.error("timeout", request_id, "no free execution environment in time")
        if not result.ok:
            document = result.error_document()
            detail = f"{document.get('errorType')}: {document.get('errorMessage', '')}".strip()
            return self.error("function_error", request_id, detail)
        try:
            if config.api_type == "http" and config.payload_format == "2.0":
                response = http_response_from_v2_result(result.payload)
            else:
                response = http_response_from_v1_result(
                    result.payload,
                    api_type=config.api_type,
                    accept=request.header("accept"),
                    binary_media_types=config.binary_media_types,
                )
        except InvalidLambdaResponse as exc:
            return self.error("function_error", request_id, f"malformed Lambda response: {exc}")
        id_header = "x-amzn-RequestId" if config.api_type == "rest" else "apigw-requestid"
        headers = [(k, v) for k, v in response.headers if k.lower() not in _HOP_BY_HOP]
        headers.append((id_header, request_id))
        return GatewayReply(
            HttpResponse(response.status, headers, response.body),
            f"{result.duration_ms:.1f} ms in the function",
            request_id,
        )


class _BodyTooLarge(Exception):
    def __init__(self, readable: bool) -> None:
        self.readable = readable  # False: the rest of the body was not read, hang up after


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall
    server_version = "slimserve-local"
    sys_version = ""
    server: GatewayHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is printed by _handle instead

    def _read_exact(self, size: int) -> bytes:
        return self.rfile.read(size) if size > 0 else b""

    def _drain(self, size: int) -> None:
        while size > 0:
            chunk = self.rfile.read(min(size, 1 << 20))
            if not chunk:
                return
            size -= len(chunk)

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            total += size
            if total > _DRAIN_LIMIT_BYTES:
                raise _BodyTooLarge(readable=False)
            chunk = self.rfile.read(size)
            self.rfile.readline(3)
            if total <= limit:
                parts.append(chunk)
        if total > limit:
            raise _BodyTooLarge(readable=True)
        return b"".join(parts)

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            if length <= _DRAIN_LIMIT_BYTES:
                self._drain(length)
                raise _BodyTooLarge(readable=True)
            raise _BodyTooLarge(readable=False)
        return self._read_exact(length)

    def _handle(self) -> None:
        started = time.perf_counter()
        gateway = self.server.gateway
        too_large = False
        body = b""
        try:
            body = self._read_body(gateway.config.max_body_bytes)
        except _BodyTooLarge as exc:
            too_large = True
            self.close_connection = not exc.readable
        except ValueError:
            self.send_error(400, "malformed body framing")
            return
        path, _, query = self.path.partition("?")
        headers = list(self.headers.items())
        if any(k.lower() == "transfer-encoding" for k, _ in headers) and not too_large:
            # The gateway buffers the whole body: the function sees its length, not chunks.
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
            headers.append(("Content-Length", str(len(body))))
        request = HttpRequest(
            method=self.command,
            path=path,
            query=query,
            headers=headers,
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        reply = gateway.handle(request, body_too_large=too_large)
        response = reply.response
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.server.log_request_line(
            f"{self.command} {self.path} -> {response.status} in {elapsed_ms:.1f} ms"
            + (f" ({reply.detail})" if reply.detail else "")
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class GatewayHttpServer(ThreadingHTTPServer):
    """The HTTP front on ``host:port`` (port 0: a free one)."""

    daemon_threads = True
    # Waiting clients queue in the kernel instead of getting refused under a burst.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early are normal traffic, not server errors.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def __init__(
        self,
        gateway: Gateway,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__((host, port), _FrontHandler)
        self.gateway = gateway
        self._log = log
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
            name="slimserve-gateway",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def log_request_line(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Idempotent; also fine when start() never ran (shutdown() would wait forever)."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.server_close()
