"""The local gateway on a socket: a threading HTTP/1.1 server that reads each request (bodies
framed by Content-Length or chunked, oversized ones drained or hung up on), hands it to a
``Gateway`` and writes the reply."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slimserve.build.local.apigw.config import MAX_GATEWAY_BODY_BYTES
from slimserve.build.local.apigw.events import HttpRequest
from slimserve.build.local.apigw.gateway import Gateway

_DRAIN_LIMIT_BYTES = 4 * MAX_GATEWAY_BODY_BYTES  # read and drop up to this, then hang up


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
