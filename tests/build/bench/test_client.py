"""The load client against a plain local HTTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slimserve.build.bench.client import run_load


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        fail = self.path.endswith("/fail")
        body = b'{"error": "no"}' if fail else b'{"outputs": []}'
        self.send_response(500 if fail else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_load_client_counts_requests_and_errors(echo_server: str) -> None:
    result = run_load(f"{echo_server}/v2/models/m/infer", b"{}", concurrency=4, count=200, time_cap_s=30)
    assert result["requests"] == 200 and result["errors"] == 0 and result["stopped_by"] == "count"
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["throughput_rps"] > 0
    failing = run_load(f"{echo_server}/fail", b"{}", concurrency=2, count=10, time_cap_s=30)
    assert failing["errors"] == 10 and failing["error_samples"][0].startswith("status 500")


def test_load_client_stops_at_the_time_cap(echo_server: str) -> None:
    started = time.perf_counter()
    result = run_load(f"{echo_server}/v2/models/m/infer", b"{}", concurrency=2, count=10**9, time_cap_s=0.5)
    assert time.perf_counter() - started < 5
    assert result["stopped_by"] == "time cap" and result["requests"] > 0


def test_load_client_only_talks_to_this_machine() -> None:
    with pytest.raises(ValueError, match="only talks to this machine"):
        run_load("http://example.com/x", b"{}", concurrency=1, count=1, time_cap_s=1)
