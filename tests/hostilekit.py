"""The hostile-input corpus (tests/hostile/corpus.json and framing.json): the requests, how to
put them on the wire, and what each one must get back, exactly. Used by the in-process run
(tests/handler/test_hostile.py: the real gateway logic and handler, no sockets) and by the
run against ``slimserve local`` in every stack shape (tests/build/local/test_hostile.py)."""

from __future__ import annotations

import base64
import json
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.routing import Route
from slimserve.handler.manifest import Manifest

from repo import TESTS_DIR

HOSTILE_DIR = TESTS_DIR / "hostile"
GROUPS = (
    "malformed JSON and encodings",
    "schema abuse",
    "shapes and datatypes",
    "binary extension lies",
    "text inputs",
    "limits",
    "explain",
)
HEADER_LENGTH = "inference-header-content-length"

# What slimserve's stacks declare (infra/http_api.py, infra/rest_api.py), so that the in-process
# run routes as the deployed API does; tests/build/local/test_hostile.py checks these against
# the synthesized templates. REST: ANY on every resource on the way, POST only on infer.
_REST_INFER = (
    "/v2/models/{model_name}/infer",
    "/v2/models/{model_name}/versions/{model_version}/infer",
    "/v2/models/{model_name}/explain",
    "/v2/models/{model_name}/versions/{model_version}/explain",
)
_REST_PROXIES = (
    "/{proxy+}", "/v2", "/v2/{proxy+}", "/v2/models", "/v2/models/{model_name}",
    "/v2/models/{model_name}/{proxy+}", "/v2/models/{model_name}/versions",
    "/v2/models/{model_name}/versions/{model_version}",
    "/v2/models/{model_name}/versions/{model_version}/{proxy+}",
)  # fmt: skip
STACK_ROUTES = {
    "http": (Route("ANY", "/{proxy+}"),),
    "rest": tuple(Route("ANY", path) for path in _REST_PROXIES) + tuple(Route("POST", path) for path in _REST_INFER),
}
REST_BINARY_MEDIA_TYPES = ("*/*", "application/octet-stream")


def stack_config(manifest: Manifest, api_type: str) -> GatewayConfig:
    """The gateway of slimserve's stack of ``api_type``, open (no auth), without synthesis."""
    rest = api_type == "rest"
    return GatewayConfig(
        api_type="rest" if rest else "http",
        payload_format="1.0" if rest else "2.0",
        stage="prod" if rest else "$default",
        routes=STACK_ROUTES[api_type],
        binary_media_types=REST_BINARY_MEDIA_TYPES if rest else (),
        function_timeout_s=float(manifest.runtime.timeout_s),
        memory_mb=manifest.runtime.memory_mb,
    )


@dataclass(frozen=True)
class Expected:
    status: int
    error: str | None  # the handler's exact {"error": ...}; None for a success
    outputs: tuple[str, ...] | None = None  # a success: the output names, in order
    message: str | None = None  # API Gateway's own exact {"message": ...} (then no error)


@dataclass(frozen=True)
class Case:
    """One request of the corpus and what it must get."""

    name: str
    group: str
    model: str  # "digits" or "minilm": the example whose API it is sent to
    method: str
    path: str  # without the stage prefix
    headers: tuple[tuple[str, str], ...]
    body: bytes
    expected: Expected
    expected_rest: Expected | None  # when a REST API's handling of the body changes the answer
    # In-process only: the event's body as no API Gateway sends it (e.g. invalid base64).
    event_body: Mapping[str, Any] | None = None

    def expected_for(self, api_type: str) -> Expected:
        return self.expected_rest if api_type == "rest" and self.expected_rest else self.expected

    @property
    def reaches_gateway(self) -> bool:
        """False for event-level corruption that only an in-process event can carry."""
        return self.event_body is None


def _joined(parts: str | Sequence[Any]) -> str:
    """A string, or a list of strings and ``{"repeat": s, "times": n}`` (large bodies stay
    small in the corpus)."""
    if isinstance(parts, str):
        return parts
    return "".join(part if isinstance(part, str) else part["repeat"] * part["times"] for part in parts)


def _tensor_bytes(part: Mapping[str, Any]) -> bytes:
    if "fp32" in part:
        return struct.pack(f"<{len(part['fp32'])}f", *part["fp32"])
    if "strings" in part:  # BYTES elements, each with its 4-byte little-endian length
        encoded = [text.encode("utf-8", "surrogatepass") for text in part["strings"]]
        return b"".join(struct.pack("<I", len(item)) + item for item in encoded)
    if "hex" in part:
        return bytes.fromhex(part["hex"])
    raise ValueError(f"unknown binary part {sorted(part)}")


def _body(spec: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The body a case describes and the headers that go with its form."""
    if "binary" in spec:
        binary = spec["binary"]
        header = json.dumps(binary["header"]).encode()
        data = b"".join(_tensor_bytes(part) for part in binary.get("data", []))
        length = binary.get("header_length", len(header))
        headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(length)}
        return header + data, headers
    if "body_b64" in spec:
        return base64.b64decode(spec["body_b64"]), {"content-type": "application/json"}
    if "body_parts" in spec:
        text = _joined(spec["body_parts"])
        return text.encode("utf-8", "surrogatepass"), {"content-type": "application/json"}
    if "body" in spec:
        body = spec["body"]
        text = body if isinstance(body, str) else json.dumps(body)
        return text.encode("utf-8", "surrogatepass"), {"content-type": "application/json"}
    return b"", {}


def _expected(spec: Mapping[str, Any]) -> Expected:
    outputs = spec.get("outputs")
    return Expected(
        spec["status"],
        spec.get("error"),
        tuple(outputs) if outputs is not None else None,
        spec.get("message"),
    )


def _case(spec: Mapping[str, Any]) -> Case:
    body, defaults = _body(spec)
    headers = {**defaults, **spec.get("headers", {})}
    return Case(
        name=spec["name"],
        group=spec["group"],
        model=spec["model"],
        method=spec["method"],
        path=spec["path"],
        # null in the corpus removes a default header (e.g. a binary body without Content-Type)
        headers=tuple((k, v) for k, v in headers.items() if v is not None),
        body=body,
        expected=_expected(spec),
        expected_rest=_expected(spec["rest"]) if "rest" in spec else None,
        event_body=spec.get("event_body"),
    )


def load_corpus() -> list[Case]:
    cases = [_case(spec) for spec in json.loads((HOSTILE_DIR / "corpus.json").read_text())]
    names = [case.name for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"case names must be unique: {duplicates}"
    return cases


def response_document(headers: Mapping[str, str], body: bytes) -> Any:
    """The JSON of a response; for binary responses, the JSON header before the tensors."""
    length = headers.get(HEADER_LENGTH)
    return json.loads(body[: int(length)] if length is not None else body)


def mismatch(expected: Expected, status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """None when the response is what ``expected`` says, else what differs (one line)."""
    got = f"{status} {body[:300]!r}"
    if status != expected.status:
        return f"status {status}, expected {expected.status}: {got}"
    try:
        document = response_document(headers, body)
    except (ValueError, UnicodeDecodeError):
        return f"not JSON: {got}"
    if expected.message is not None:
        if document != {"message": expected.message}:
            return f"expected API Gateway's {{'message': {expected.message!r}}}, got {got}"
        return None
    if expected.error is not None:
        if document != {"error": expected.error}:
            return f"expected {{'error': {expected.error!r}}}, got {got}"
        return None
    if isinstance(document, dict) and isinstance(document.get("predictions"), list):
        return None if document["predictions"] else f"no predictions: {got}"  # POST /predict
    if not isinstance(document, dict) or not isinstance(document.get("outputs"), list):
        return f"a success without outputs: {got}"
    names = tuple(output.get("name") for output in document["outputs"])
    if expected.outputs is not None and names != expected.outputs:
        return f"outputs {names}, expected {expected.outputs}"
    return None


# --- raw HTTP framing (framing.json) -------------------------------------------------------------


@dataclass(frozen=True)
class FramingCase:
    name: str
    raw: str  # latin-1 text with {stage}, {auth} and {valid} placeholders
    status: int
    message: str | None  # the front's {"message": ...}; None: the request is served

    def request(self, stage: str, auth_lines: Sequence[str], valid_body: bytes) -> bytes:
        """The bytes to send. {valid} is a valid inference body for the example served;
        {valid_length} its length; {auth} the credentials of the stack shape."""
        text = (
            self.raw.replace("{stage}", stage)
            .replace("{auth}", "".join(f"{line}\r\n" for line in auth_lines))
            .replace("{valid_length}", str(len(valid_body)))
            .replace("{valid_chunk_size}", f"{len(valid_body):x}")
        )
        head, found, tail = text.partition("{valid}")
        return head.encode("latin-1") + (valid_body + tail.encode("latin-1") if found else b"")




def load_framing() -> list[FramingCase]:
    specs = json.loads((HOSTILE_DIR / "framing.json").read_text())
    return [FramingCase(s["name"], _joined(s["raw"]), s["status"], s["message"]) for s in specs]


@dataclass(frozen=True)
class RawAnswer:
    status_line: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    closed: bool | None  # whether the server closed the connection (None: not waited for)

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])


def _read_head(sock: socket.socket, data: bytes) -> tuple[str, dict[str, str], bytes]:
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status_line, headers, rest


def exchange(address: tuple[str, int], raw: bytes, *, timeout_s: float = 20.0, wait_close: bool = False) -> RawAnswer:
    """Send ``raw`` on a new connection and read one response (interim 1xx ones skipped).
    Raises TimeoutError when the server does not answer within ``timeout_s`` (a hang)."""
    with socket.create_connection(address, timeout=timeout_s) as sock:
        sock.sendall(raw)
        status_line, headers, rest = _read_head(sock, b"")
        while status_line.split()[1].startswith("1"):  # 100 Continue
            status_line, headers, rest = _read_head(sock, rest)
        while len(rest) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside the response body")
            rest += chunk
        closed = None
        if wait_close:
            sock.settimeout(3)
            try:
                closed = sock.recv(1) == b""
            except ConnectionResetError:
                closed = True
            except TimeoutError:
                closed = False
    return RawAnswer(status_line, headers, rest, closed)
