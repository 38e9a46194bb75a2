"""The local front on a real socket (build/local/apigw/server.py and framing.py), against a fake
function that echoes its event: HTTP/1.1 framing as RFC 9112 has it (tests/hostile/framing.json,
which also runs against every stack shape in tests/build/local/test_hostile.py), the front's own
refusals (JSON, a status line, the connection closed), idle and stalled connections, header
values as API Gateway passes them on. Raw sockets, because well-behaved clients cannot send
these."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.gateway import Gateway
from slimserve.build.local.apigw.server import GatewayHttpServer
from slimserve.build.local.runtime_api import InvocationResult

from hostilekit import FramingCase, exchange, load_framing

IDLE_S = 0.5
FRAMING = load_framing()


def echo(payload: bytes, _wait_s: float) -> Future[InvocationResult | None]:
    future: Future[InvocationResult | None] = Future()
    result = {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": payload.decode()}
    future.set_result(InvocationResult("id", json.dumps(result).encode()))
    return future


@pytest.fixture(scope="module")
def front() -> Iterator[tuple[str, int]]:
    server = GatewayHttpServer(Gateway(GatewayConfig(), echo), idle_timeout_s=IDLE_S)
    server.start()
    try:
        yield server.server_address[:2]
    finally:
        server.stop()


def event_of(front: tuple[str, int], raw: bytes) -> dict:
    answer = exchange(front, raw, timeout_s=5)
    assert answer.status_line == "HTTP/1.1 200 OK", (answer.status_line, answer.body)
    return json.loads(answer.body)


@pytest.mark.parametrize("case", FRAMING, ids=lambda case: case.name)
def test_framing_corpus(front, case: FramingCase) -> None:
    started = time.monotonic()
    answer = exchange(front, case.request("", [], b'{"inputs": []}'), timeout_s=5, wait_close=case.message is not None)
    assert answer.status == case.status, (answer.status_line, answer.body)
    if case.message is None:
        return
    # The front's refusals: a status line, JSON, and the connection closed.
    assert answer.status_line.startswith("HTTP/1.1 ")
    assert answer.headers["content-type"] == "application/json" and answer.headers["connection"] == "close"
    assert json.loads(answer.body) == {"message": case.message}
    assert answer.closed, "the front kept a connection whose request it refused"
    if case.status != 408:
        assert time.monotonic() - started < IDLE_S + 3.5  # refused on the bytes, not by the timeout


def test_the_chunk_of_issue_11_is_refused_at_once(front) -> None:
    raw = b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello0\r\n\r\n"
    started = time.monotonic()
    answer = exchange(front, raw, timeout_s=5)
    assert (answer.status, json.loads(answer.body)) == (400, {"message": "Bad Request: chunk data is not followed by CRLF"})
    assert time.monotonic() - started < IDLE_S


def test_a_body_cut_short_by_the_client_is_a_400(front) -> None:
    with socket.create_connection(front, timeout=5) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b'{"message":"Bad Request: the body ended after 3 of 10 bytes"}')


def test_valid_chunked_body_is_reassembled_and_reframed(front) -> None:
    raw = b"POST /v2/x HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2 ;x\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    event = event_of(front, raw)
    assert event["body"] == "abcde"
    assert event["headers"]["content-length"] == "5" and "transfer-encoding" not in event["headers"]


def test_idle_connections_are_closed(front) -> None:
    with socket.create_connection(front, timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < IDLE_S + 2


def test_keep_alive_serves_several_requests_on_one_connection(front) -> None:
    with socket.create_connection(front, timeout=5) as sock:
        for body in (b"one", b"two"):
            sock.sendall(b"POST /v2/x HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n" + body)
            data = b""
            while not data.endswith(b"}"):
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200 OK") and json.loads(data.partition(b"\r\n\r\n")[2])["body"] == body.decode()


def test_absolute_form_targets_are_served_by_their_path(front) -> None:
    event = event_of(front, b"GET http://example.com/v2/health/ready?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (event["rawPath"], event["rawQueryString"]) == ("/v2/health/ready", "x=1")


def test_header_values_lose_the_whitespace_around_them(front) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Api-Key:   key value \t\r\nUser-Agent: \t probe/1  \r\n\r\n"
    event = event_of(front, raw)
    assert event["headers"]["x-api-key"] == "key value"  # inner whitespace is part of the value
    assert event["requestContext"]["http"]["userAgent"] == "probe/1"


@pytest.mark.parametrize(("host", "port"), [("[::1]:8443", "8443"), ("[::1]", "80"), ("example.com:81", "81")])
def test_an_ipv6_host_header_is_served(front, host: str, port: str) -> None:
    event = event_of(front, b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
    assert event["headers"]["host"] == host
    assert event["headers"]["x-forwarded-port"] == port


def test_the_front_listens_on_ipv6() -> None:
    try:
        server = GatewayHttpServer(Gateway(GatewayConfig(), echo), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    server.start()
    try:
        assert server.url.startswith("http://[::1]:")
        assert exchange(server.server_address[:2], b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", timeout_s=5).status == 200
    finally:
        server.stop()
