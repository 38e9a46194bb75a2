"""The API-Gateway-shaped front of a local run, without sockets.

``Gateway.handle`` does what API Gateway does with one request, in API Gateway's order: body
limit, stage, route (routing.py), authorization (auth.py: IAM signature / JWT / API key), event
(events.py), Lambda's payload limit, invoke with the integration timeout, response translation
(responses.py), and API Gateway's own error answers (errors.py). What the API looks like is a
``GatewayConfig`` (config.py); server.py puts the gateway on a socket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from slimserve.build.local.apigw.auth import Denied, authorize, unrouted
from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.errors import (
    GatewayError,
    GatewayErrorKind,
    answer_for,
    error_response,
)
from slimserve.build.local.apigw.events import (
    AuthContext,
    HttpRequest,
    HttpResponse,
    RouteMatch,
    build_http_api_v2_event,
    build_v1_event,
    new_request_id,
    new_trace_id,
)
from slimserve.build.local.apigw.responses import (
    InvalidLambdaResponse,
    http_response_from_v1_result,
    http_response_from_v2_result,
)
from slimserve.build.local.apigw.routing import match_route
from slimserve.build.local.runtime_api import MAX_REQUEST_PAYLOAD_BYTES, InvocationResult

_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}


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

    def error(
        self,
        kind: GatewayErrorKind,
        request_id: str,
        detail: str = "",
        *,
        answer: GatewayError | None = None,
    ) -> GatewayReply:
        config = self.config
        answer = answer or answer_for(config.api_type, kind, max_body_bytes=config.max_body_bytes)
        message = detail or answer.body.decode("utf-8", "replace")
        response = error_response(config.api_type, answer, request_id)
        return GatewayReply(response, message, request_id)

    def _refuse(self, denied: Denied, request_id: str) -> GatewayReply:
        return self.error(denied.kind, request_id, denied.detail, answer=denied.answer)

    def _event(
        self, request: HttpRequest, match: RouteMatch, auth: AuthContext | None, request_id: str
    ) -> dict[str, Any]:
        config = self.config
        now_ms = int(time.time() * 1000)
        trace_id = new_trace_id()
        if config.api_type == "http" and config.payload_format == "2.0":
            return build_http_api_v2_event(
                request,
                match,
                stage=config.stage,
                request_id=request_id,
                trace_id=trace_id,
                now_ms=now_ms,
                stage_variables=config.stage_variables,
                auth=auth,
            )
        return build_v1_event(
            request,
            match,
            api_type=config.api_type,
            stage=config.stage,
            stage_prefix=config.stage_prefix,
            request_id=request_id,
            trace_id=trace_id,
            now_ms=now_ms,
            binary_media_types=config.binary_media_types,
            stage_variables=config.stage_variables,
            auth=auth,
        )

    def _response(self, request: HttpRequest, result: InvocationResult) -> HttpResponse:
        """The function's result as API Gateway sends it on; raises InvalidLambdaResponse."""
        config = self.config
        if config.api_type == "http" and config.payload_format == "2.0":
            return http_response_from_v2_result(result.payload)
        return http_response_from_v1_result(
            result.payload,
            api_type=config.api_type,
            accept=request.header("accept"),
            binary_media_types=config.binary_media_types,
        )

    def handle(self, request: HttpRequest, *, body_too_large: bool = False) -> GatewayReply:
        config = self.config
        request_id = new_request_id()
        if body_too_large or len(request.body) > config.max_body_bytes:
            return self.error("body_too_large", request_id, "body over API Gateway's 10 MiB limit")

        path = unquote(request.path)
        prefix = config.stage_prefix
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                outside = f"path is outside stage {config.stage}"
                return self._refuse(unrouted(request, config.api_type, outside), request_id)
            path = path[len(prefix) :] or "/"
        matched = match_route(config.routes, request.method, path, api_type=config.api_type)
        if matched is None:
            return self._refuse(unrouted(request, config.api_type, "no route matches"), request_id)
        route, match = matched
        authorized = authorize(route, request, api_type=config.api_type, api_keys=config.api_keys)
        if isinstance(authorized, Denied):
            return self._refuse(authorized, request_id)

        event = self._event(request, match, authorized, request_id)
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
            response = self._response(request, result)
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
