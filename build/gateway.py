"""The API-Gateway-shaped HTTP front of a local run.

``GatewayConfig`` says what the deployed API looks like (HTTP or REST API, payload format,
stage, routes, auth, binary media types, timeouts, the function's memory and environment).
Defaults come from the manifest; a later step can fill it from a synthesized CloudFormation
template instead.

``Gateway.handle`` does what API Gateway does with one request: limits, stage, route, auth,
event, invoke with the integration timeout, response translation, and API Gateway's own error
answers. ``GatewayHttpServer`` puts it on a socket.
"""

from __future__ import annotations

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
from urllib.parse import unquote

from build.events import (
    ApiType,
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
from build.runtime_api import MAX_REQUEST_PAYLOAD_BYTES, InvocationResult

MAX_GATEWAY_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload quota (REST and HTTP APIs)
HTTP_API_MAX_TIMEOUT_S = 30.0
REST_API_DEFAULT_TIMEOUT_S = 29.0
_DRAIN_LIMIT_BYTES = 4 * MAX_GATEWAY_BODY_BYTES  # read and drop up to this, then hang up
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}

GatewayErrorKind = Literal["not_found", "unauthorized", "too_large", "function_error", "timeout"]

# What each API type answers by itself, as (status, body). HTTP API's messages are Title Case.
_GATEWAY_ERRORS: dict[ApiType, dict[GatewayErrorKind, tuple[int, str]]] = {
    "http": {
        "not_found": (404, "Not Found"),
        "unauthorized": (401, "Unauthorized"),
        "too_large": (413, "Request Entity Too Large"),
        "function_error": (502, "Internal Server Error"),
        "timeout": (503, "Service Unavailable"),
    },
    "rest": {
        "not_found": (403, "Missing Authentication Token"),
        "unauthorized": (401, "Unauthorized"),
        "too_large": (413, "Request Entity Too Large"),
        "function_error": (502, "Internal server error"),
        "timeout": (504, "Endpoint request timed out"),
    },
}


@dataclass(frozen=True)
class Route:
    """An HTTP API route key ("GET /items/{id}", "ANY /{proxy+}", "$default") or a REST method
    on a resource (same notation)."""

    method: str  # "ANY" or an HTTP method, upper case
    path: str  # "/items/{id}", "/{proxy+}", or "$default"

    @classmethod
    def parse(cls, key: str) -> Route:
        key = key.strip()
        if key == "$default":
            return cls("ANY", "$default")
        method, _, path = key.partition(" ")
        if not path.startswith("/"):
            raise ValueError(f"route key {key!r} is not 'METHOD /path' or '$default'")
        return cls(method.upper(), path)

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route takes (method, decoded path), else None."""
        if self.method not in ("ANY", method):
            return None
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

    def priority(self) -> tuple[int, int, int, int, int]:
        """Smaller wins: exact paths, then variables, then greedy; a method before ANY;
        $default last (API Gateway's most-specific-match rule)."""
        greedy = sum(1 for s in self.segments if s.endswith("+}"))
        variables = sum(1 for s in self.segments if s.startswith("{"))
        return (
            self.path == "$default",
            greedy,
            variables,
            -len(self.segments),
            self.method == "ANY",
        )


def match_route(routes: tuple[Route, ...], method: str, path: str) -> RouteMatch | None:
    candidates = []
    for route in routes:
        params = route.match(method, path)
        if params is not None:
            candidates.append((route.priority(), route, params))
    if not candidates:
        return None
    _, route, params = min(candidates, key=lambda item: item[0])
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
    auth_required: bool = False  # no Authorization header -> 401 (tokens are not verified)
    binary_media_types: tuple[str, ...] = ()  # REST API only
    integration_timeout_s: float = HTTP_API_MAX_TIMEOUT_S
    function_timeout_s: float = 20.0
    memory_mb: int = 1024
    environment: Mapping[str, str] = field(default_factory=dict)
    stage_variables: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = MAX_GATEWAY_BODY_BYTES

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
        object.__setattr__(self, "environment", _freeze(self.environment))
        object.__setattr__(self, "stage_variables", _freeze(self.stage_variables))

    @classmethod
    def from_manifest(cls, manifest: Any, *, api_type: ApiType = "http") -> GatewayConfig:
        """Defaults for a slimserve deployment: the manifest's runtime settings, and the API
        shape infra/ deploys by default (HTTP API, payload 2.0, $default stage and route)."""
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
            )
        return cls(function_timeout_s=float(runtime.timeout_s), memory_mb=runtime.memory_mb)

    @property
    def stage_prefix(self) -> str:
        """Path prefix the stage adds to URLs ("" for HTTP API's $default stage)."""
        return "" if self.stage == "$default" else f"/{self.stage}"

    def describe(self) -> str:
        api = "HTTP API" if self.api_type == "http" else "REST API"
        return f"{api}, payload {self.payload_format}, stage {self.stage}"


@dataclass(frozen=True)
class GatewayReply:
    response: HttpResponse
    detail: str = ""  # why the gateway answered this way, for the local log
    request_id: str = ""


SubmitEvent = Callable[[bytes, float], "Future[InvocationResult | None]"]


class Gateway:
    """API Gateway's request handling, without sockets. ``submit(payload, wait_s)`` starts one
    invocation and returns a future; ``wait_s`` is how long it may wait for a free
    environment."""

    def __init__(self, config: GatewayConfig, submit: SubmitEvent) -> None:
        self.config = config
        self._submit = submit

    def error(self, kind: GatewayErrorKind, request_id: str, detail: str = "") -> GatewayReply:
        status, message = _GATEWAY_ERRORS[self.config.api_type][kind]
        body = json.dumps({"message": message}).encode()
        headers = [("content-type", "application/json")]
        if self.config.api_type == "rest":
            headers.append(("x-amzn-RequestId", request_id))
        else:
            headers.append(("apigw-requestid", request_id))
        return GatewayReply(HttpResponse(status, headers, body), detail or message, request_id)

    def handle(self, request: HttpRequest, *, body_too_large: bool = False) -> GatewayReply:
        config = self.config
        request_id = new_request_id()
        if body_too_large or len(request.body) > config.max_body_bytes:
            return self.error("too_large", request_id, "body over API Gateway's 10 MB limit")

        path = unquote(request.path)
        prefix = config.stage_prefix
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                return self.error("not_found", request_id, f"path is outside stage {config.stage}")
            path = path[len(prefix) :] or "/"
        match = match_route(config.routes, request.method, path)
        if match is None:
            return self.error("not_found", request_id, "no route matches")
        if config.auth_required and not request.header("authorization"):
            return self.error("unauthorized", request_id, "no Authorization header")

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
            )
        payload = json.dumps(event, separators=(",", ":")).encode()
        if len(payload) > MAX_REQUEST_PAYLOAD_BYTES:
            return self.error(
                "too_large",
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
