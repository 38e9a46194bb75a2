"""A small Lambda Runtime API server (the endpoint ``AWS_LAMBDA_RUNTIME_API`` points at).

The real runtime interface client (``awslambdaric``) inside the function process talks to it:

- ``GET  /2018-06-01/runtime/invocation/next`` blocks until an event is queued, then answers
  with the event and the ``Lambda-Runtime-*`` headers;
- ``POST /2018-06-01/runtime/invocation/{id}/response`` and ``.../{id}/error`` complete it;
- ``POST /2018-06-01/runtime/init/error`` reports a failed init (e.g. an import error).

One server serves one function process and hands out one invocation at a time, like Lambda.
A new process gets a new server, so a poll left behind by a dead process can never swallow an
event meant for its successor.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slimserve.build.local.apigw.events import new_request_id, new_trace_id

API_PREFIX = "/2018-06-01/runtime"
# Lambda's synchronous limits; the response side really is 100 bytes larger.
MAX_REQUEST_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_RESPONSE_PAYLOAD_BYTES = 6 * 1024 * 1024 + 100

_RESULT_PATH = re.compile(rf"^{API_PREFIX}/invocation/([^/]+)/(response|error)$")


@dataclass(frozen=True)
class InvocationResult:
    """How one invocation ended. ``payload`` is the function's response, or an error document."""

    request_id: str
    payload: bytes
    error_type: str | None = None  # None: success
    duration_ms: float = 0.0
    # True when the function process cannot be trusted any more (timed out, crashed, broke the
    # Runtime API contract): Lambda throws such an execution environment away.
    environment_lost: bool = False

    @property
    def ok(self) -> bool:
        return self.error_type is None

    def error_document(self) -> dict[str, Any]:
        """The error as Lambda's Invoke API reports it (``errorType``, ``errorMessage``...)."""
        try:
            document = json.loads(self.payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            document = None
        if not isinstance(document, dict):
            document = {"errorMessage": self.payload.decode("utf-8", "replace")}
        document.setdefault("errorType", self.error_type or "")
        return document


def error_result(
    request_id: str, error_type: str, message: str, *, environment_lost: bool, started: float
) -> InvocationResult:
    document = {"errorType": error_type, "errorMessage": message}
    return InvocationResult(
        request_id,
        json.dumps(document).encode(),
        error_type,
        (time.perf_counter() - started) * 1000,
        environment_lost,
    )


@dataclass
class Invocation:
    """One queued or running event; completed exactly once (first outcome wins)."""

    payload: bytes
    deadline_ms: int
    invoked_function_arn: str
    request_id: str = field(default_factory=new_request_id)
    trace_id: str = field(default_factory=new_trace_id)
    started: float = field(default_factory=time.perf_counter)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _result: InvocationResult | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def complete(self, result: InvocationResult) -> bool:
        with self._lock:
            if self._result is not None:
                return False
            self._result = result
        self._done.set()
        return True

    def fail(self, error_type: str, message: str, *, environment_lost: bool) -> bool:
        return self.complete(
            error_result(
                self.request_id,
                error_type,
                message,
                environment_lost=environment_lost,
                started=self.started,
            )
        )

    def wait(self, timeout_s: float | None) -> InvocationResult | None:
        self._done.wait(timeout_s)
        return self._result


@dataclass(frozen=True)
class InitError:
    error_type: str
    message: str
    document: dict[str, Any]

    def describe(self) -> str:
        return f"{self.error_type}: {self.message}" if self.message else self.error_type


class RuntimeApiServer:
    """Runtime API for one function process. Thread-safe; start() once, close() once."""

    def __init__(self, function_arn: str, host: str = "127.0.0.1") -> None:
        self.function_arn = function_arn
        self._cond = threading.Condition()
        self._queued: Invocation | None = None
        self._in_flight: dict[str, Invocation] = {}
        self._closed = False
        self._runtime_exit: tuple[str, str] | None = None  # set once the process has exited
        self.polled = threading.Event()  # the runtime finished init and asked for work
        self.init_failed = threading.Event()
        self.init_error: InitError | None = None
        # Set when the API refused something the runtime posted; the runtime client raises on
        # any non-2xx answer and the process is about to die (or is unusable).
        self.contract_broken = threading.Event()
        self._http = _RuntimeHttpServer((host, 0), _RuntimeApiHandler)
        self._http.api = self
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
            name="slimserve-runtime-api",
            daemon=True,
        )

    @property
    def address(self) -> str:
        host, port = self._http.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            queued, self._queued = self._queued, None
            in_flight = list(self._in_flight.values())
            self._in_flight.clear()
            self._cond.notify_all()
        for invocation in ([queued] if queued else []) + in_flight:
            invocation.fail(
                "Runtime.Stopped", "the local function was stopped", environment_lost=True
            )
        self._http.shutdown()
        self._http.server_close()

    def submit(
        self,
        payload: bytes,
        timeout_s: float,
        *,
        request_id: str | None = None,
        trace_id: str | None = None,
        invoked_function_arn: str | None = None,
    ) -> Invocation:
        """Queue one event. The caller waits on the returned invocation. The request and trace
        ids default to fresh ones; an emulator passes the ids its caller already saw."""
        given_ids = {"request_id": request_id, "trace_id": trace_id}
        invocation = Invocation(
            payload,
            int((time.time() + timeout_s) * 1000),
            invoked_function_arn or self.function_arn,
            **{name: value for name, value in given_ids.items() if value},
        )
        with self._cond:
            if self._closed:
                raise RuntimeError("the Runtime API is closed")
            if self._queued is not None or self._in_flight:
                raise RuntimeError("one invocation at a time per execution environment")
            exit_reason = self._runtime_exit
            if exit_reason is None:
                self._queued = invocation
                self._cond.notify_all()
        if exit_reason is not None:
            # The process died after the caller last looked: fail now, not at the deadline.
            invocation.fail(*exit_reason, environment_lost=True)
        return invocation

    def fail_all(self, error_type: str, message: str) -> None:
        """The process is gone: whatever it held, or is given later, cannot complete."""
        with self._cond:
            self._runtime_exit = (error_type, message)
            queued, self._queued = self._queued, None
            in_flight = list(self._in_flight.values())
            self._in_flight.clear()
        for invocation in ([queued] if queued else []) + in_flight:
            invocation.fail(error_type, message, environment_lost=True)

    # --- called from request handler threads -------------------------------------------------

    def _next(self) -> Invocation | None:
        self.polled.set()
        with self._cond:
            while self._queued is None and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            invocation, self._queued = self._queued, None
            assert invocation is not None
            self._in_flight[invocation.request_id] = invocation
            return invocation

    def _requeue_undelivered(self, invocation: Invocation) -> None:
        # The runtime's connection died before it got the event: it never started.
        with self._cond:
            self._in_flight.pop(invocation.request_id, None)
        invocation.fail(
            "Runtime.ExitError",
            "the runtime disconnected before receiving the event",
            environment_lost=True,
        )

    def _finish(self, request_id: str) -> Invocation | None:
        with self._cond:
            return self._in_flight.pop(request_id, None)

    def _record_init_error(self, document: dict[str, Any], header_type: str | None) -> None:
        error_type = str(document.get("errorType") or header_type or "Runtime.Unknown")
        self.init_error = InitError(error_type, str(document.get("errorMessage") or ""), document)
        self.init_failed.set()


class _RuntimeHttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a poll blocked in /next must not keep the interpreter alive
    api: RuntimeApiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime that dies mid-request (timeout kill, crash) resets its connection: expected.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the runtime client keeps its connection alive
    # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK
    # (~40 ms per invocation).
    disable_nagle_algorithm = True
    server: _RuntimeHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the function's own output is what users want to see

    def _send_json(
        self, status: int, document: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def do_GET(self) -> None:
        api = self.server.api
        if self.path != f"{API_PREFIX}/invocation/next":
            self._send_json(404, {"errorType": "NotFound", "errorMessage": self.path})
            return
        invocation = api._next()
        if invocation is None:  # shutting down
            self._send_json(410, {"errorType": "Runtime.Stopped", "errorMessage": "stopped"})
            self.close_connection = True
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(invocation.payload)))
            self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms))
            self.send_header(
                "Lambda-Runtime-Invoked-Function-Arn", invocation.invoked_function_arn
            )
            self.send_header("Lambda-Runtime-Trace-Id", invocation.trace_id)
            self.end_headers()
            self.wfile.write(invocation.payload)
            self.wfile.flush()
        except OSError:
            api._requeue_undelivered(invocation)

    def do_POST(self) -> None:
        api = self.server.api
        body = self._read_body()
        if self.path == f"{API_PREFIX}/init/error":
            try:
                document = json.loads(body) if body else {}
            except (json.JSONDecodeError, UnicodeDecodeError):
                document = {"errorMessage": body.decode("utf-8", "replace")}
            if not isinstance(document, dict):
                document = {"errorMessage": str(document)}
            api._record_init_error(document, self.headers.get("Lambda-Runtime-Function-Error-Type"))
            self._send_json(202, {"status": "OK"})
            return
        match = _RESULT_PATH.match(self.path)
        if not match:
            self._send_json(404, {"errorType": "NotFound", "errorMessage": self.path})
            return
        request_id, outcome = match.groups()
        invocation = api._finish(request_id)
        if invocation is None:
            self._send_json(
                400,
                {"errorType": "InvalidRequestID", "errorMessage": "Invalid request ID"},
            )
            return
        elapsed_ms = (time.perf_counter() - invocation.started) * 1000
        if outcome == "response" and len(body) > MAX_RESPONSE_PAYLOAD_BYTES:
            message = (
                f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload "
                f"size ({MAX_RESPONSE_PAYLOAD_BYTES} bytes)."
            )
            invocation.fail("Function.ResponseSizeTooLarge", message, environment_lost=True)
            api.contract_broken.set()
            self._send_json(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"errorType": "RequestEntityTooLarge", "errorMessage": message},
            )
            return
        if outcome == "response":
            invocation.complete(InvocationResult(request_id, body, None, elapsed_ms))
        else:
            error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
            try:
                document = json.loads(body)
                error_type = error_type or document.get("errorType")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                pass
            invocation.complete(
                InvocationResult(request_id, body, error_type or "Unhandled", elapsed_ms)
            )
        self._send_json(202, {"status": "OK"})
