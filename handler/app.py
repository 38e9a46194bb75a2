"""The ASGI app Lambda runs: Open Inference Protocol v2 over one loaded model.

Why not FastAPI at run time: importing FastAPI alone costs about twice the whole cold-start
floor (onnxruntime + numpy + session) on these machines, and cold start is a feature. So the
runtime app is a small ASGI router over ``InferenceService``; FastAPI still *declares* the API
at build time (build/pipeline/openapi.py), and the OpenAPI document it renders ships beside the model
and is served at ``/openapi.json`` and ``/docs``. Schemathesis fuzzes this app against that
document in CI, so the two cannot drift apart.

Errors are mapped to HTTP in exactly one place (``SlimserveApp.__call__``): every error body is
``{"error": "..."}``, every response carries ``x-request-id`` (API Gateway's request id when
there is one), and nothing a client sends can produce a stack trace or crash the process.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from slimserve.handler.errors import (
    MAX_MESSAGE_CHARS,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    SlimserveError,
    clip,
)
from slimserve.handler.model import LoadedModel
from slimserve.handler.service import InferenceService, InferReply
from slimserve.handler.tasks import TaskAdapter

logger = logging.getLogger("slimserve")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OPENAPI_FILE = "openapi.json"
HEADER_LENGTH = "inference-header-content-length"

# Swagger UI from a CDN, pinned to one version with subresource-integrity hashes (sha384 of the
# files in the npm package swagger-ui-dist@5.35.0, which jsDelivr serves byte for byte): a
# changed or compromised file is refused by the browser instead of running on the docs page.
_DOCS_HTML = """<!DOCTYPE html>
<html><head><title>{title}</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/swagger-ui.css"
 integrity="sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I" crossorigin="anonymous"></head>
<body><div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/swagger-ui-bundle.js"
 integrity="sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9" crossorigin="anonymous"></script>
<script>SwaggerUIBundle({{url: "{openapi_url}", dom_id: "#swagger-ui"}});</script>
</body></html>
"""


@dataclass
class Call:
    """One HTTP request as the endpoints see it."""

    method: str
    path: str
    root_path: str
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    context: Any = None  # the Lambda context (scope["aws.context"] under Mangum): remaining time


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, document: Any, status: int = 200) -> "Reply":
        # allow_nan=False: NaN/Infinity literals are not JSON; producers check before they get here.
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        # A lone surrogate (an event path can carry one into a message) cannot be UTF-8; it only
        # ever sits inside a JSON string, where the escape `\udXXX` is valid JSON for it.
        return cls(status, body.encode("utf-8", "backslashreplace"))


Endpoint = Callable[[Call], Reply]


class Route(NamedTuple):  # a NamedTuple: cheap to define at cold start (messages.py)
    method: str
    path: str  # OpenAPI template, e.g. /v2/models/{model_name}/infer
    endpoint: Endpoint

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


def request_id_of(scope: Scope) -> str:
    """API Gateway's request id when running under Mangum, else the client's, else a new one."""
    event = scope.get("aws.event")
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict) and isinstance(context.get("requestId"), str):
            return context["requestId"]
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            return value.decode("latin-1")[:128]
    return str(uuid.uuid4())


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size} bytes exceeds the limit of {limit} bytes"


class SlimserveApp:
    """A pure ASGI app: route table, body limit, request id, one place that maps errors."""

    # It awaits nothing but the server's receive/send (no I/O, no timers): under Mangum its
    # cycle runs without an event loop (handler/gateway.py's InlineHTTPCycle).
    never_waits = True

    def __init__(self, service: InferenceService, routes: list[Route], *, max_body_bytes: int) -> None:
        self.service = service
        self.routes = [(route, route.pattern) for route in routes]
        self.max_body_bytes = max_body_bytes

    def route_table(self) -> set[tuple[str, str]]:
        return {(route.method, route.path) for route, _ in self.routes}

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = []
        for route, pattern in self.routes:
            found = pattern.match(path)
            if found:
                if route.method == method:
                    return route, found.groupdict()
                allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(
                f"method {clip(method)} is not allowed on {clip(path, 200)}", headers={"allow": ", ".join(sorted(set(allowed)))}
            )
        raise NotFound(f"no route for {method} {clip(path, 200)}")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    break
                if declared > self.max_body_bytes:
                    raise PayloadTooLarge(_too_large(declared, self.max_body_bytes))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(_too_large(size, self.max_body_bytes))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = request_id_of(scope)
        method, path = scope["method"], scope["path"]
        try:
            route, params = self._match(method, path)
            body = await self._read_body(scope, receive) if method in ("POST", "PUT", "PATCH") else b""
            headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
            call = Call(method, path, scope.get("root_path", ""), headers, body, params, scope.get("aws.context"))
            reply = route.endpoint(call)
        except SlimserveError as exc:
            # Bounded whatever a message quotes: the response must stay far below Lambda's 6 MB.
            message = clip(exc.message, MAX_MESSAGE_CHARS)
            if exc.status_code >= 500:
                logger.error("request failed: %s", message, exc_info=exc, extra={"request_id": request_id})
                message = f"{message}; request id {request_id}"
            reply = Reply.json({"error": message}, exc.status_code)
            reply.headers.update(exc.headers)
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            reply = Reply.json({"error": f"internal error; request id {request_id}"}, 500)
        headers = [
            (b"content-type", reply.content_type.encode()),
            (b"content-length", str(len(reply.body)).encode()),
            (b"x-request-id", request_id.encode("latin-1", "replace")),
            *((key.encode(), value.encode()) for key, value in reply.headers.items()),
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body if method != "HEAD" else b""})


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to start: the model is loaded at import. Answer the protocol for ASGI servers.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _openapi_reply(path: Path, root_path: str) -> Reply:
    document = _read_openapi(path)
    if document is None:
        raise NotFound("this bundle ships no OpenAPI document (build it with slimserve build)")
    if root_path:
        document = {**document, "servers": [{"url": root_path}]}
    return Reply.json(document)


@functools.cache
def _read_openapi(path: Path) -> dict[str, Any] | None:
    # Read on the first request for it, not at init: cold start pays only for what it serves.
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def create_app(model: LoadedModel, *, adapter: TaskAdapter | None = None, openapi: Path | None = None) -> SlimserveApp:
    """The runtime app. ``openapi`` defaults to ``openapi.json`` beside the model's manifest."""
    service = InferenceService(model, adapter)
    openapi_path = openapi or model.model_dir / OPENAPI_FILE
    title = f"slimserve: {model.name}"

    def infer(call: Call) -> Reply:
        return _tensor_reply(
            service.infer(call.params["model_name"], call.params.get("model_version"), call.body, call.headers.get(HEADER_LENGTH))
        )

    def explain(call: Call) -> Reply:
        return _tensor_reply(
            service.explain(
                call.params["model_name"], call.params.get("model_version"), call.body, call.headers.get(HEADER_LENGTH),
                call.context,
            )
        )

    def _tensor_reply(result: InferReply) -> Reply:
        if result.header_length is None:
            return Reply(200, result.body)
        return Reply(
            200,
            result.body,
            content_type="application/octet-stream",
            headers={"inference-header-content-length": str(result.header_length)},
        )

    routes = [
        Route("GET", "/v2", lambda call: Reply.json(service.server_metadata())),
        Route("GET", "/v2/health/live", lambda call: Reply.json({"live": True})),
        Route("GET", "/v2/health/ready", lambda call: Reply.json({"ready": True})),
        Route("GET", "/v2/models/{model_name}", lambda call: Reply.json(service.model_metadata(**call.params))),
        Route(
            "GET",
            "/v2/models/{model_name}/versions/{model_version}",
            lambda call: Reply.json(service.model_metadata(**call.params)),
        ),
        Route("GET", "/v2/models/{model_name}/ready", lambda call: Reply.json(service.model_ready(**call.params))),
        Route(
            "GET",
            "/v2/models/{model_name}/versions/{model_version}/ready",
            lambda call: Reply.json(service.model_ready(**call.params)),
        ),
        Route("POST", "/v2/models/{model_name}/infer", infer),
        Route("POST", "/v2/models/{model_name}/versions/{model_version}/infer", infer),
        Route("POST", "/v2/models/{model_name}/explain", explain),
        Route("POST", "/v2/models/{model_name}/versions/{model_version}/explain", explain),
        Route("POST", "/predict", lambda call: Reply.json(service.predict(call.body))),
        Route("GET", "/openapi.json", lambda call: _openapi_reply(openapi_path, call.root_path)),
        Route(
            "GET",
            "/docs",
            lambda call: Reply(
                200,
                _DOCS_HTML.format(title=title, openapi_url=f"{call.root_path}/openapi.json").encode(),
                content_type="text/html; charset=utf-8",
            ),
        ),
    ]
    return SlimserveApp(service, routes, max_body_bytes=model.manifest.runtime.limits.max_body_bytes)
