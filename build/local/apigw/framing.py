"""HTTP/1.1 message framing for the local front (server.py), strictly as RFC 9112 says: which
body a request has (Content-Length, chunked, none), reading it, and the header checks a
server must make. Pure functions over a binary file object, so they are testable without
sockets.

Every refusal is a ``FramingError`` with the status RFC 9110/9112 name for it (400, 501, 505)
and a short message; the connection is closed after it, because the rest of the stream cannot
be trusted to start a new request. Nothing here waits without end: the socket underneath has a
timeout (server.py), and every line read has a length limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import BinaryIO, Literal

MAX_LINE_BYTES = 8192  # a chunk-size or trailer line
MAX_TRAILER_LINES = 100  # as many as header lines (http.client's limit)
MAX_CHUNK_SIZE_DIGITS = 16  # 64-bit sizes; more is a lie, not a body
_READ_STEP = 1 << 20

_DIGITS = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
# A field value: visible characters, spaces, tabs and obs-text (RFC 9110 5.5); no CR, LF or NUL.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a field name (RFC 9110 5.1)
_OWS = " \t"
# uri-host [":" port] (RFC 9110 7.2): an IP literal in brackets or a reg-name, maybe empty.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")


class FramingError(Exception):
    """A request whose framing or head is not HTTP/1.1: answered with ``status`` and closed."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    @property
    def message(self) -> str:
        """What the client reads: the reason phrase and why, e.g. "Bad Request: ...\"."""
        return f"{self.status.phrase}: {self.detail}"


class BodyTooLarge(Exception):
    """The body is over the gateway's limit (413). ``readable``: it was read (and dropped), so
    the connection can serve another request; otherwise the server hangs up after answering."""

    def __init__(self, readable: bool) -> None:
        super().__init__("body over the limit")
        self.readable = readable


def _bad(detail: str) -> FramingError:
    return FramingError(HTTPStatus.BAD_REQUEST, detail)


# --- the head ------------------------------------------------------------------------------------


def clean_headers(
    items: Iterable[tuple[str, str]], *, malformed_lines: bool = False
) -> list[tuple[str, str]]:
    """Header fields as the gateway passes them on: values without the optional whitespace
    around them (it is not part of the value, RFC 9110 5.5, and API Gateway trims it too).
    ``malformed_lines``: the header parser met lines that are not ``name: value`` (http.client
    records them as defects, e.g. ``X-Api-Key : v``, and drops them with all after them).
    Raises FramingError for such lines (RFC 9112 5.1: whitespace before the colon is a 400),
    folded lines (obs-fold, 5.2), names that are not tokens and control characters."""
    if malformed_lines:
        raise _bad("a header line is not a 'name: value' field")
    cleaned = []
    for name, value in items:
        if not _TOKEN.fullmatch(name):
            raise _bad("a header field name is not a token")
        if "\r" in value or "\n" in value:
            raise _bad(f"header field {name!r} is folded over several lines (obs-fold)")
        if not _FIELD_VALUE.fullmatch(value):
            raise _bad(f"header field {name!r} has a control character in its value")
        cleaned.append((name, value.strip(_OWS)))
    return cleaned


def check_host(headers: Sequence[tuple[str, str]], version: str) -> None:
    """RFC 9112 3.2: an HTTP/1.1 request has exactly one Host field, and it names a host."""
    hosts = [value for name, value in headers if name.lower() == "host"]
    if not hosts and version == "HTTP/1.1":
        raise _bad("an HTTP/1.1 request needs a Host header field")
    if len(hosts) > 1:
        raise _bad("more than one Host header field")
    if hosts and not _HOST.fullmatch(hosts[0]):
        raise _bad("the Host header field is not a host")


def request_target(target: str, method: str) -> tuple[str, str]:
    """(path, query) of a request-target: origin-form ``/path?query``, absolute-form
    ``http://host/path`` (which servers must accept, RFC 9112 3.2.2) or ``*`` for OPTIONS."""
    if target.startswith(("http://", "https://")):
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    elif target == "*" and method == "OPTIONS":
        return "*", ""
    if not target.startswith("/"):
        raise _bad("the request target is not an absolute path")
    path, _, query = target.partition("?")
    return path, query


# --- which body ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyFraming:
    kind: Literal["none", "length", "chunked"]
    length: int = 0


def _list_values(values: Sequence[str]) -> list[str]:
    return [part.strip(_OWS) for value in values for part in value.split(",")]


def body_framing(headers: Sequence[tuple[str, str]], version: str) -> BodyFraming:
    """The request's body framing (RFC 9112 6.1-6.3). Raises FramingError: 501 for a transfer
    coding other than chunked, 400 for chunked not last or twice, Transfer-Encoding in an
    HTTP/1.0 request or beside Content-Length (the request-smuggling shapes), and a
    Content-Length that is not one decimal number."""
    transfer = [v for k, v in headers if k.lower() == "transfer-encoding"]
    lengths = [v for k, v in headers if k.lower() == "content-length"]
    if transfer:
        codings = [coding.lower() for coding in _list_values(transfer)]
        unknown = [coding for coding in codings if coding != "chunked"]
        if unknown:
            raise FramingError(
                HTTPStatus.NOT_IMPLEMENTED, f"transfer coding {unknown[0][:32]!r} is not supported"
            )
        if version == "HTTP/1.0":
            raise _bad("Transfer-Encoding in an HTTP/1.0 request")
        if len(codings) != 1:
            raise _bad("chunked is applied more than once")
        if lengths:
            raise _bad("both Transfer-Encoding and Content-Length")
        return BodyFraming("chunked")
    if not lengths:
        return BodyFraming("none")
    values = set(_list_values(lengths))
    if len(values) != 1:
        raise _bad("conflicting Content-Length values")
    (value,) = values
    if not _DIGITS.fullmatch(value.encode()) or len(value) > 19:
        raise _bad("Content-Length is not a decimal number of bytes")
    return BodyFraming("length", int(value))


# --- reading it ----------------------------------------------------------------------------------


def _drain(rfile: BinaryIO, size: int) -> None:
    while size > 0:
        chunk = rfile.read(min(size, _READ_STEP))
        if not chunk:
            return
        size -= len(chunk)


def read_length_body(rfile: BinaryIO, length: int, limit: int, drain_limit: int) -> bytes:
    """``length`` bytes. Over ``limit``: dropped (up to ``drain_limit``) and BodyTooLarge."""
    if length > limit:
        if length <= drain_limit:
            _drain(rfile, length)
            raise BodyTooLarge(readable=True)
        raise BodyTooLarge(readable=False)
    body = rfile.read(length) if length else b""
    if len(body) != length:
        raise _bad(f"the body ended after {len(body)} of {length} bytes")
    return body


def _line(rfile: BinaryIO, what: str) -> bytes:
    """One CRLF-terminated line without its CRLF (bare LF is not a chunk line ending)."""
    line = rfile.readline(MAX_LINE_BYTES + 1)
    if not line.endswith(b"\r\n"):
        if len(line) > MAX_LINE_BYTES:
            raise _bad(f"{what} is longer than {MAX_LINE_BYTES} bytes")
        raise _bad(f"{what} does not end with CRLF" if line else f"the body ended before {what}")
    return line[:-2]


def _chunk_size(line: bytes) -> int:
    size, _, _extensions = line.partition(b";")
    size = size.rstrip(b" \t")  # BWS before a chunk extension
    if not _HEX.fullmatch(size):
        raise _bad("a chunk size is not a hexadecimal number")
    if len(size.lstrip(b"0")) > MAX_CHUNK_SIZE_DIGITS:
        raise _bad("a chunk size is too large")
    return int(size, 16)


def read_chunked_body(rfile: BinaryIO, limit: int, drain_limit: int) -> bytes:
    """The chunked body, reassembled; every chunk's data must be followed by CRLF, the last
    chunk (size 0) by optional trailer fields and an empty line. Over ``limit``: BodyTooLarge
    after reading to the end (up to ``drain_limit``)."""
    parts: list[bytes] = []
    total = 0
    while True:
        size = _chunk_size(_line(rfile, "a chunk-size line"))
        if size == 0:
            break
        total += size
        if total > drain_limit:
            raise BodyTooLarge(readable=False)
        if total <= limit:
            data = rfile.read(size)
            if len(data) != size:
                raise _bad(f"the body ended inside a chunk ({len(data)} of {size} bytes)")
            parts.append(data)
        else:
            _drain(rfile, size)
        if rfile.read(2) != b"\r\n":
            raise _bad("chunk data is not followed by CRLF")
    for _ in range(MAX_TRAILER_LINES + 1):
        if not _line(rfile, "a trailer line"):
            break
    else:
        raise _bad(f"more than {MAX_TRAILER_LINES} trailer lines")
    if total > limit:
        raise BodyTooLarge(readable=True)
    return b"".join(parts)
