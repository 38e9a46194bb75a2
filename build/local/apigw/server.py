"""The local gateway on a socket: a threading HTTP/1.1 server that reads each request (bodies
framed by Content-Length or chunked, checked by framing.py; oversized ones drained or hung up
on), hands it to a ``Gateway`` and writes the reply.

What the front refuses by itself (a malformed request line or framing, an HTTP version or
transfer coding it does not speak, a stalled connection) it answers with a status line, a
JSON body ``{"message": "<Reason>: <why>"}`` and ``Connection: close``: 400, 408, 414, 431,
501 or 505 as RFC 9110/9112 name them. Idle and stalled connections are closed after
``idle_timeout_s`` without a byte."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slimserve.build.local.apigw.config import MAX_GATEWAY_BODY_BYTES
from slimserve.build.local.apigw.events import HttpRequest
from slimserve.build.local.apigw.framing import (
    BodyTooLarge,
    FramingError,
    body_framing,
    check_host,
    clean_headers,
    read_chunked_body,
    read_length_body,
    request_target,
)
from slimserve.build.local.apigw.gateway import Gateway

_DRAIN_LIMIT_BYTES = 4 * MAX_GATEWAY_BODY_BYTES  # read and drop up to this, then hang up
# How long a connection may sit without sending a byte (between requests, or stalled inside
# one) before the front gives up on it: a client cannot hold a thread forever.
IDLE_TIMEOUT_S = 30.0

# What http.server says when it refuses a request line itself, in this front's words.
_REFUSALS: dict[str, tuple[HTTPStatus, str]] = {
    "Bad request version": (HTTPStatus.BAD_REQUEST, "the HTTP version is malformed"),
    "Bad request syntax": (HTTPStatus.BAD_REQUEST, "the request line is malformed"),
    "Bad HTTP/0.9 request type": (HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/0.9"),
    "Invalid HTTP version": (HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.0 and HTTP/1.1"),
    "Line too long": (HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "a header line is too long"),
    "Too many headers": (HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header fields"),
    "Unsupported method": (HTTPStatus.NOT_IMPLEMENTED, "the method is not supported"),
}


def _lingering_close(connection: socket.socket) -> None:
    """Half-close, then read and drop what the client still sends (up to 1 MiB or 1 s):
    closing a socket with unread input makes the kernel send a reset, which can destroy the
    answer before the client reads it."""
    try:
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(1.0)
        for _ in range(16):
            if not connection.recv(1 << 16):
                break
    except OSError:
        pass


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall
    server_version = "slimserve-local"
    sys_version = ""
    server: GatewayHttpServer

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout_s  # every read and write of this connection
        self.unread_input = False  # closing with unread bytes would reset the connection
        super().setup()

    def finish(self) -> None:
        super().finish()
        if self.unread_input:
            _lingering_close(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is printed by _handle instead

    # --- refusals of the front itself: JSON, a status line, and the connection closed ---------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (request line, header limits, unknown methods), as JSON."""
        status = HTTPStatus(code)
        detail = status.phrase
        if status == HTTPStatus.REQUEST_URI_TOO_LONG:
            detail = "the request line is longer than 65536 bytes"
        for prefix, refusal in _REFUSALS.items():
            if message and message.startswith(prefix):
                status, detail = refusal
        self._refuse(FramingError(status, detail))

    def _refuse(self, error: FramingError) -> None:
        # The request may have stopped before its version (or said HTTP/0.9): http.server would
        # then write no status line at all. The stream cannot be trusted after this: close it.
        self.request_version = self.protocol_version
        self.close_connection = self.unread_input = True
        body = json.dumps({"message": error.message}, separators=(",", ":")).encode()
        try:
            self.send_response(error.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            return  # the client is gone
        request_line = getattr(self, "requestline", "")[:200] or "-"
        self.server.log_request_line(f"{request_line} -> {int(error.status)} ({error.detail})")

    def parse_request(self) -> bool:
        try:
            if not super().parse_request():
                return False
        except TimeoutError:
            self._refuse(
                FramingError(HTTPStatus.REQUEST_TIMEOUT, "the request head stalled")
            )
            return False
        if self.request_version == "HTTP/0.9":  # "GET /" with no version: not HTTP/1.x
            self._refuse(FramingError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/0.9"))
            return False
        return True

    # --- one request ---------------------------------------------------------------------------

    def _read_body(self, headers: list[tuple[str, str]], limit: int) -> bytes:
        framing = body_framing(headers, self.request_version)
        if framing.kind == "chunked":
            return read_chunked_body(self.rfile, limit, _DRAIN_LIMIT_BYTES)
        return read_length_body(self.rfile, framing.length, limit, _DRAIN_LIMIT_BYTES)

    def _handle(self) -> None:
        started = time.perf_counter()
        gateway = self.server.gateway
        too_large = False
        body = b""
        try:
            path, query = request_target(self.path, self.command)
            malformed = bool(self.headers.defects) or bool(self.headers.get_payload())
            headers = clean_headers(self.headers.items(), malformed_lines=malformed)
            check_host(headers, self.request_version)
            body = self._read_body(headers, gateway.config.max_body_bytes)
        except BodyTooLarge as exc:
            too_large = True
            if not exc.readable:
                self.close_connection = self.unread_input = True
        except FramingError as exc:
            self._refuse(exc)
            return
        except TimeoutError:
            self._refuse(FramingError(HTTPStatus.REQUEST_TIMEOUT, "the request body stalled"))
            return
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
            f"{self.command} {self.path[:200]} -> {response.status} in {elapsed_ms:.1f} ms"
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
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        if ":" in host:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _FrontHandler)
        self.gateway = gateway
        self.idle_timeout_s = idle_timeout_s
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
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

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
