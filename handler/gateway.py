"""Event adapters for Mangum: the API Gateway stage, and events Mangum cannot serve.

Mangum picks an event handler class from a registry by asking each ``infer(event, ...)``.
HTTP API named stages put ``/<stage>`` in front of the path; REST APIs strip it. Both handlers
here remove it from the path and expose it as ASGI ``root_path``, so routes match on every
stage and the OpenAPI docs link back under the stage.
"""

from __future__ import annotations

import binascii
import functools
import json
from typing import Any

from mangum import Mangum
from mangum.handlers import alb, api_gateway
from mangum.handlers.api_gateway import APIGateway, HTTPGateway
from mangum.protocols import HTTPCycle
from mangum.types import (
    ASGI,
    LambdaConfig,
    LambdaContext,
    LambdaEvent,
    LambdaHandler,
    Response,
    Scope,
)


def _server_and_port(headers: dict[str, Any]) -> tuple[str, int]:
    """ASGI's ``server`` from the Host header. Mangum's own splits Host at every colon and so
    fails on an IPv6 literal (``[::1]:8080``) or a port that is not a number, which made a
    valid request a 400; the port then comes from X-Forwarded-Port, else 80."""
    host = str(headers.get("host") or "mangum")
    if host.startswith("["):
        name, _, after = host[1:].partition("]")
        port = after[1:] if after.startswith(":") else ""
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    else:
        name, port = host, ""
    if not (port.isascii() and port.isdigit()):
        port = str(headers.get("x-forwarded-port") or "")
    return name, int(port) if port.isascii() and port.isdigit() else 80


# mangum 0.22 (pinned) looks the function up in these modules when it builds a scope.
api_gateway.get_server_and_port = _server_and_port
alb.get_server_and_port = _server_and_port


def _stage_prefix(event: LambdaEvent) -> str:
    stage = (event.get("requestContext") or {}).get("stage")
    if not isinstance(stage, str) or not stage or stage == "$default":
        return ""
    return f"/{stage}"


class StagedHTTPGateway(HTTPGateway):
    """API Gateway HTTP API (payload 1.0 and 2.0) and Lambda Function URLs."""

    # Mangum reads the scope twice per request (the ASGI call, then the result's format):
    # build it once.
    @functools.cached_property
    def scope(self) -> Scope:
        scope = super().scope
        prefix = _stage_prefix(self.event)
        if prefix and self.event.get("version") == "2.0":
            path: str = scope["path"]
            if path == prefix or path.startswith(prefix + "/"):
                scope["path"] = path[len(prefix) :] or "/"
            scope["root_path"] = prefix
        return scope


class StagedAPIGateway(APIGateway):
    """API Gateway REST API (payload 1.0): the path is already stage-free."""

    @functools.cached_property
    def scope(self) -> Scope:
        scope = super().scope
        scope["root_path"] = _stage_prefix(self.event)
        return scope


class InlineHTTPCycle(HTTPCycle):
    """Mangum's HTTP cycle, stepped inline, for an app that declares ``never_waits`` (the
    SlimserveApp: it awaits only this cycle's ``receive``, whose body is already queued, and
    ``send``, which only records). Its coroutine then finishes at its first step, without an
    event-loop task and two loop iterations per request (~9 of Mangum's ~13 us, measured)."""

    def __call__(self, app: ASGI) -> Response:
        coroutine = self.run(app)
        try:
            coroutine.send(None)
        except StopIteration:
            return {"status": self.status, "headers": self.headers, "body": self.body}
        coroutine.close()
        raise RuntimeError("an app that declares never_waits waited on something")


def _error_result(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"error": message}),
        "isBase64Encoded": False,
    }


class SlimserveMangum(Mangum):
    """Mangum that answers a malformed or unsupported event with a 400 JSON result instead of
    raising (an exception would surface as a Lambda error and a 502 from API Gateway)."""

    def __call__(self, event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        if not isinstance(event, dict):
            return _error_result(400, f"event must be a JSON object, got {type(event).__name__}")
        try:
            handler = self.infer(event, context)
        except RuntimeError:
            return _error_result(
                400,
                "unsupported event: expected an API Gateway (REST or HTTP API), Lambda Function URL "
                "or ALB request event",
            )
        event_kind = type(handler).__name__
        try:
            return self._serve(handler, event, context)
        except binascii.Error:
            return _error_result(400, "request body is marked isBase64Encoded but is not valid base64")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # Mangum reads required fields straight from the event; a truncated event lands here.
            return _error_result(400, f"malformed {event_kind} event: {exc!r}")

    def _serve(self, handler: LambdaHandler, event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        if self.lifespan != "off":
            return super().__call__(event, context)
        # Mangum.__call__ with lifespan="off", on the handler already inferred (Mangum would
        # infer it again): one HTTP cycle through the app, the result in the event's format.
        cycle = InlineHTTPCycle if getattr(self.app, "never_waits", False) else HTTPCycle
        return handler(cycle(handler.scope, handler.body)(self.app))


def make_lambda_handler(app: Any) -> SlimserveMangum:
    # lifespan="off": Mangum would run startup/shutdown on every invocation; the model is
    # loaded at import instead (Lambda's init phase, and the SnapStart snapshot).
    return SlimserveMangum(app, lifespan="off", custom_handlers=[StagedHTTPGateway, StagedAPIGateway])


__all__ = ["LambdaConfig", "SlimserveMangum", "make_lambda_handler"]
