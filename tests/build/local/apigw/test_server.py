"""The local front on a real socket (build/local/apigw/server.py and framing.py), against a fake
function that echoes its event: HTTP/1.1 framing as RFC 9112 has it, the front's own refusals
(JSON, a status line, the connection closed), idle and stalled connections, header values as
API Gateway passes them on. Raw sockets, because well-behaved clients cannot send these."""

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

IDLE_S = 0.5


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


def read_response(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """One response: status line, headers (lower-case names), body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a full response head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return status, headers, body


def closed(sock: socket.socket) -> bool:
    sock.settimeout(3)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def exchange(front: tuple[str, int], raw: bytes, *, wait_close: bool = True) -> tuple[str, dict, bytes]:
    with socket.create_connection(front, timeout=5) as sock:
        sock.sendall(raw)
        status, headers, body = read_response(sock)
        if wait_close:
            assert closed(sock), "the front kept a connection whose framing it refused"
    return status, headers, body


def refused(front: tuple[str, int], raw: bytes) -> tuple[int, str]:
    status, headers, body = exchange(front, raw)
    assert status.startswith("HTTP/1.1 "), status  # a status line, always
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    return int(status.split()[1]), json.loads(body)["message"]


def event_of(front: tuple[str, int], raw: bytes) -> dict:
    status, _, body = exchange(front, raw, wait_close=False)
    assert status == "HTTP/1.1 200 OK", (status, body)
    return json.loads(body)


POST = b"POST /v2/x HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"


# --- chunked bodies ---------------------------------------------------------------------------


def test_chunk_data_without_its_crlf_is_a_400_at_once_not_a_hang(front) -> None:
    # issue 11: one chunk, then the last chunk right after the data, no CRLF in between
    started = time.monotonic()
    raw = POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"5\r\nhello0\r\n\r\n"
    assert refused(front, raw) == (400, "Bad Request: chunk data is not followed by CRLF")
    assert time.monotonic() - started < IDLE_S  # refused on the bytes, not by the timeout


def test_valid_chunked_body_with_extensions_and_trailers_is_reassembled(front) -> None:
    raw = POST + b"Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2 ;x\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    event = event_of(front, raw)
    assert event["body"] == "abcde"
    assert event["headers"]["content-length"] == "5" and "transfer-encoding" not in event["headers"]


MALFORMED_CHUNKS = [
    (b"zz\r\nab\r\n0\r\n\r\n", "Bad Request: a chunk size is not a hexadecimal number"),
    (b"0x2\r\nab\r\n0\r\n\r\n", "Bad Request: a chunk size is not a hexadecimal number"),
    (b"-2\r\nab\r\n0\r\n\r\n", "Bad Request: a chunk size is not a hexadecimal number"),
    (b" 2\r\nab\r\n0\r\n\r\n", "Bad Request: a chunk size is not a hexadecimal number"),
    (b"\r\n", "Bad Request: a chunk size is not a hexadecimal number"),
    (b"1" + b"0" * 17 + b"\r\nab\r\n0\r\n\r\n", "Bad Request: a chunk size is too large"),
    (b"2\nab\r\n0\r\n\r\n", "Bad Request: a chunk-size line does not end with CRLF"),
    (b"2\r\nabc\r\n0\r\n\r\n", "Bad Request: chunk data is not followed by CRLF"),
    (b"2\r\nab\n0\r\n\r\n", "Bad Request: chunk data is not followed by CRLF"),
    (b"2\r\nab\r\n0\r\nbad trailer", "Bad Request: a trailer line does not end with CRLF"),
    (b"2\r\nab\r\n0\r\n" + b"X: y\r\n" * 101 + b"\r\n", "Bad Request: more than 100 trailer lines"),
    (b"f" * 9000 + b"\r\n", "Bad Request: a chunk-size line is longer than 8192 bytes"),
]  # fmt: skip


@pytest.mark.parametrize(("chunks", "message"), MALFORMED_CHUNKS, ids=[m for _, m in MALFORMED_CHUNKS])
def test_malformed_chunks_are_400s(front, chunks: bytes, message: str) -> None:
    raw = POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunks
    if not chunks.endswith(b"\r\n\r\n") and b"bad trailer" in chunks:
        # the line never ends: the front waits for more, then gives up on the stalled body
        assert refused(front, raw) == (408, "Request Timeout: the request body stalled")
        return
    assert refused(front, raw) == (400, message)


FRAMING_HEADERS = [
    (b"Transfer-Encoding: gzip, chunked\r\n", 501, "Not Implemented: transfer coding 'gzip' is not supported"),
    (b"Transfer-Encoding: identity\r\n", 501, "Not Implemented: transfer coding 'identity' is not supported"),
    (b"Transfer-Encoding: chunked, chunked\r\n", 400, "Bad Request: chunked is applied more than once"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400, "Bad Request: both Transfer-Encoding and Content-Length"),
    (b"Content-Length: +5\r\n", 400, "Bad Request: Content-Length is not a decimal number of bytes"),
    (b"Content-Length: 5_0\r\n", 400, "Bad Request: Content-Length is not a decimal number of bytes"),
    (b"Content-Length: -1\r\n", 400, "Bad Request: Content-Length is not a decimal number of bytes"),
    (b"Content-Length: 0x10\r\n", 400, "Bad Request: Content-Length is not a decimal number of bytes"),
    (b"Content-Length: 5, 6\r\n", 400, "Bad Request: conflicting Content-Length values"),
    (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400, "Bad Request: conflicting Content-Length values"),
]  # fmt: skip


@pytest.mark.parametrize(("headers", "status", "message"), FRAMING_HEADERS, ids=[h.decode()[:30] for h, _, _ in FRAMING_HEADERS])
def test_body_framing_headers_follow_rfc_9112(front, headers: bytes, status: int, message: str) -> None:
    assert refused(front, POST + headers + b"\r\nhello") == (status, message)


def test_transfer_encoding_in_http_1_0_is_refused(front) -> None:
    raw = b"POST /x HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert refused(front, raw) == (400, "Bad Request: Transfer-Encoding in an HTTP/1.0 request")


def test_repeated_identical_content_length_is_one_length(front) -> None:
    event = event_of(front, POST + b"Content-Length: 5, 5\r\n\r\nhello")
    assert event["body"] == "hello"


def test_body_shorter_than_its_content_length_times_out_with_a_408(front) -> None:
    assert refused(front, POST + b"Content-Length: 10\r\n\r\nabc") == (
        408,
        "Request Timeout: the request body stalled",
    )


def test_idle_connections_are_closed(front) -> None:
    with socket.create_connection(front, timeout=5) as sock:
        started = time.monotonic()
        assert closed(sock)
        assert time.monotonic() - started < IDLE_S + 2


def test_keep_alive_serves_several_requests_on_one_connection(front) -> None:
    with socket.create_connection(front, timeout=5) as sock:
        for body in (b"one", b"two"):
            sock.sendall(POST + b"Content-Length: 3\r\n\r\n" + body)
            status, _, answer = read_response(sock)
            assert status == "HTTP/1.1 200 OK" and json.loads(answer)["body"] == body.decode()


# --- request line and head ------------------------------------------------------------------------


REFUSED_HEADS = [
    (b"GET /\r\n\r\n", 505, "HTTP Version Not Supported: HTTP/0.9"),
    (b"POST /\r\n\r\n", 505, "HTTP Version Not Supported: HTTP/0.9"),
    (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "HTTP Version Not Supported: only HTTP/1.0 and HTTP/1.1"),
    (b"GET / HTTP/3\r\nHost: h\r\n\r\n", 400, "Bad Request: the HTTP version is malformed"),
    (b"GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400, "Bad Request: the HTTP version is malformed"),
    (b"GET / FTP/1.1\r\nHost: h\r\n\r\n", 400, "Bad Request: the HTTP version is malformed"),
    (b"GET / / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "Bad Request: the request line is malformed"),
    (b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", 501, "Not Implemented: the method is not supported"),
    (b"get / HTTP/1.1\r\nHost: h\r\n\r\n", 501, "Not Implemented: the method is not supported"),
    (b"GET v2 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "Bad Request: the request target is not an absolute path"),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, "Request-URI Too Long: the request line is longer than 65536 bytes"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431, "Request Header Fields Too Large: too many header fields"),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * 70000 + b"\r\n\r\n", 431, "Request Header Fields Too Large: a header line is too long"),
    (b"GET / HTTP/1.1\r\nX-Api-Key : k\r\n\r\n", 400, "Bad Request: a header line is not a 'name: value' field"),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400, "Bad Request: a header line is not a 'name: value' field"),
    (b"GET / HTTP/1.1\r\n: no name\r\n\r\n", 400, "Bad Request: a header line is not a 'name: value' field"),
    (b"GET / HTTP/1.1\r\nX(y): z\r\n\r\n", 400, "Bad Request: a header field name is not a token"),
    (b"GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n", 400, "Bad Request: header field 'X' is folded over several lines (obs-fold)"),
    (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400, "Bad Request: header field 'X' has a control character in its value"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "status", "message"), REFUSED_HEADS, ids=[r[:24].decode("latin-1") for r, _, _ in REFUSED_HEADS])
def test_the_front_refuses_with_json_and_a_status_line(front, raw: bytes, status: int, message: str) -> None:
    assert refused(front, raw) == (status, message)


def test_a_stalled_head_times_out_with_a_408(front) -> None:
    assert refused(front, b"GET / HTTP/1.1\r\nHost: h\r\n") == (408, "Request Timeout: the request head stalled")


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
