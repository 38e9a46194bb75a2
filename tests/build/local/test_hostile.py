"""Hostile clients against `slimserve local` in every stack shape (HTTP API and REST API; auth
none, IAM, API key) and both examples, over sockets and through the real runtime client: the
corpus (tests/hostile/corpus.json) with the shape's credentials, raw HTTP framing
(framing.json), API Gateway's own limits, authorization, the worst-case echo, and a bounded
concurrent burst. Every answer is exact; none may be a 5xx (the front's 501/505 for HTTP it
does not speak aside) or never come; the execution environments started with the server
must be the ones that answer the last request (no request may cost a cold start).

Each shape is started once (its two servers, digits and MiniLM, side by side) and all of its
tests run before the next shape starts."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from rich.console import Console

from slimserve.build.local.run import LocalServer

from hostilekit import (
    GROUPS,
    REST_BINARY_MEDIA_TYPES,
    STACK_ROUTES,
    Case,
    Expected,
    exchange,
    load_corpus,
    load_framing,
    mismatch,
)
from localkit import (
    LOCAL_KEY,
    SHAPES,
    console_text,
    credential_lines,
    credentials,
    http_request,
    serve_shape,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile-local")]

CORPUS = load_corpus()
FRAMING = load_framing()
IDLE_S = 1.0  # the front's idle timeout here: the stalled-framing cases wait for it
TIMEOUT_S = 30.0  # no answer within this is a hang
# What each shape saw, for the last test of the shape (and the report).
STATS: dict[str, Counter[str]] = defaultdict(Counter)
FRONT_STATUSES = {501, 505}  # RFC 9110's answers to methods and versions the front does not speak


@dataclass
class Stack:
    shape: str
    servers: dict[str, LocalServer]  # "digits" / "minilm"
    consoles: dict[str, Console] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return SHAPES[self.shape]["api"]

    def send(
        self, model: str, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One request with the shape's credentials; counted, a missing answer as a hang."""
        url = self.servers[model].url + path
        signed = credentials(self.shape, method, url, body, headers)
        STATS[self.shape]["requests"] += 1
        try:
            status, answer_headers, answer = http_request(url, method, signed, body, timeout_s=TIMEOUT_S)
        except TimeoutError:
            STATS[self.shape]["hangs"] += 1
            raise
        if status >= 500:
            STATS[self.shape]["5xx"] += 1
        return status, answer_headers, answer

    def check(self, case: Case) -> str | None:
        status, headers, body = self.send(case.model, case.method, case.path, dict(case.headers), case.body)
        problem = mismatch(case.expected_for(self.api), status, headers, body)
        return None if problem is None else f"{case.name}: {problem}"


@pytest.fixture(scope="module", params=list(SHAPES))
def stack(request: pytest.FixtureRequest, digits_build: Path, minilm_build: Path, cache_dir: Path) -> Iterator[Stack]:
    with ExitStack() as started:
        builds = {"digits": digits_build, "minilm": minilm_build}
        served = serve_shape(request.param, builds, cache_dir, started, idle_timeout_s=IDLE_S)
        yield Stack(request.param, {m: s for m, (s, _) in served.items()}, {m: c for m, (_, c) in served.items()})


# --- the corpus ------------------------------------------------------------------------------------


def test_the_in_process_run_routes_as_the_stack(stack: Stack) -> None:
    """tests/handler/test_hostile.py routes with hostilekit's copy of the stacks' routes."""
    for server in stack.servers.values():
        assert {route.key for route in server.config.routes} == {route.key for route in STACK_ROUTES[stack.api]}
        expected_types = REST_BINARY_MEDIA_TYPES if stack.api == "rest" else ()
        assert server.config.binary_media_types == expected_types


@pytest.mark.parametrize(
    ("model", "group"),
    [(m, g) for m in ("digits", "minilm") for g in GROUPS if any(c.model == m and c.group == g for c in CORPUS)],
)
def test_corpus(stack: Stack, model: str, group: str) -> None:
    cases = [c for c in CORPUS if c.model == model and c.group == group and c.reaches_gateway]
    problems = [problem for case in cases if (problem := stack.check(case)) is not None]
    assert not problems, "\n".join(problems)


# --- raw framing -----------------------------------------------------------------------------------


def valid_digits_body() -> bytes:
    return json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}).encode()


def test_framing(stack: Stack) -> None:
    server = stack.servers["digits"]
    address = (urlsplit(server.url).hostname, urlsplit(server.url).port)
    stage = server.config.stage_prefix
    problems = []
    for case in FRAMING:
        raw = case.request(stage, credential_lines(stack.shape), valid_digits_body())
        STATS[stack.shape]["requests"] += 1
        try:
            answer = exchange(address, raw, timeout_s=TIMEOUT_S)
        except TimeoutError:
            STATS[stack.shape]["hangs"] += 1
            problems.append(f"{case.name}: no answer in {TIMEOUT_S} s")
            continue
        if answer.status >= 500 and answer.status not in FRONT_STATUSES:
            STATS[stack.shape]["5xx"] += 1
        STATS[stack.shape]["framing 501/505"] += answer.status in FRONT_STATUSES
        expected = Expected(case.status, None, message=case.message)
        if case.message is None:  # served: the handler's answer (a health check or an inference)
            expected = Expected(case.status, None, None)
            document = json.loads(answer.body)
            if document == {"ready": True}:
                continue
        problem = mismatch(expected, answer.status, answer.headers, answer.body)
        if problem:
            problems.append(f"{case.name}: {problem}")
    assert not problems, "\n".join(problems)


# --- API Gateway's own limits ----------------------------------------------------------------------


def too_large(stack: Stack) -> tuple[int, object]:
    """API Gateway's 413 for a body over 10 MB: HTTP APIs in JSON, REST APIs in plain text."""
    if stack.api == "http":
        return 413, {"message": "Request Entity Too Large"}
    return 413, "HTTP content length exceeded 10485760 bytes."


def answer_of(headers: dict[str, str], body: bytes) -> object:
    if headers.get("content-type", "").startswith("application/json"):
        return json.loads(body)
    return body.decode()


def test_gateway_limits(stack: Stack) -> None:
    path = "/v2/models/digits/infer"
    over_10_mb = b"x" * (10 * 1024 * 1024 + 1)
    status, headers, body = stack.send("digits", "POST", path, {"content-type": "application/json"}, over_10_mb)
    assert (status, answer_of(headers, body)) == too_large(stack)
    # Under 10 MB, but the event is over Lambda's 6 MB once the binary body is base64-encoded.
    binary = b"\x00" * (5 * 1024 * 1024)
    status, headers, body = stack.send("digits", "POST", path, {"content-type": "application/octet-stream"}, binary)
    message = "Request Entity Too Large" if stack.api == "http" else "Request Too Long"
    assert (status, answer_of(headers, body)) == (413, {"message": message})
    # A Content-Length the client never sends the body for: the front answers at once.
    server = stack.servers["digits"]
    address = (urlsplit(server.url).hostname, urlsplit(server.url).port)
    head = f"POST {server.config.stage_prefix}{path} HTTP/1.1\r\nHost: localhost\r\n"
    head += "".join(f"{line}\r\n" for line in credential_lines(stack.shape))
    answer = exchange(address, (head + "Content-Length: 999999999\r\n\r\n{").encode(), timeout_s=TIMEOUT_S)
    assert (answer.status, answer_of(answer.headers, answer.body)) == too_large(stack)
    STATS[stack.shape]["requests"] += 1


# --- authorization -----------------------------------------------------------------------------------

SIGV4_NO_SIGNATURE = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/execute-api/aws4_request, "
    "SignedHeaders=host;x-amz-date"
)
READY = (200, {"ready": True})
FORBIDDEN = (403, {"message": "Forbidden"})
MISSING_TOKEN = (403, {"message": "Missing Authentication Token"})


def auth_requests(stack: Stack) -> list[tuple[str, str, dict[str, str], tuple[int, object]]]:
    """(name, URL, headers sent as they are, expected answer) for ``stack``."""
    auth = SHAPES[stack.shape]["auth"]
    server = stack.servers["digits"]
    ready = server.url + "/v2/health/ready"
    signed = credentials(stack.shape, "GET", ready, b"", {}) if auth == "iam" else {}
    key = {"x-api-key": LOCAL_KEY} if auth == "api_key" else {}
    key_refusal = FORBIDDEN if auth == "api_key" else READY

    def signature_refusal(rest_message: str) -> tuple[int, object]:
        if auth != "iam":
            return READY  # nobody reads Authorization on these routes
        # REST says what is wrong (IncompleteSignatureException); HTTP APIs just refuse.
        return FORBIDDEN if stack.api == "http" else (403, {"message": rest_message})

    no_date = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    presigned = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20240101%2Fus-east-1%2F"
        "execute-api%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
    )
    cases = [
        ("valid credentials", ready, {**signed, **key}, READY),
        ("no credentials", ready, {}, (FORBIDDEN if stack.api == "http" else MISSING_TOKEN) if auth == "iam" else key_refusal),
        ("a bearer token instead of a signature", ready, {"authorization": "Bearer abc", **key}, signature_refusal(
            "'abc' not a valid key=value pair (missing equal-sign) in Authorization header: 'Bearer abc'.")),
        ("a signature without Signature", ready, {"authorization": SIGV4_NO_SIGNATURE, "x-amz-date": "20240101T000000Z", **key},
         signature_refusal(f"Authorization header requires 'Signature' parameter. Authorization={SIGV4_NO_SIGNATURE}")),
        ("a signature without a date", ready, {"authorization": SIGV4_NO_SIGNATURE + ", Signature=00", **key},
         signature_refusal(f"{no_date} Authorization={SIGV4_NO_SIGNATURE}, Signature=00")),
        ("a presigned URL", f"{ready}?{presigned}", dict(key), READY),
        ("the API key padded with spaces", ready, {**signed, "x-api-key": f"  {LOCAL_KEY} \t"}, READY),
        ("the API key under an upper-case header name", ready, {**signed, "X-API-KEY": LOCAL_KEY}, READY),
        ("a wrong API key", ready, {**signed, "x-api-key": LOCAL_KEY[:-1] + "X"}, key_refusal),
        ("the API key in other case", ready, {**signed, "x-api-key": LOCAL_KEY.upper()}, key_refusal),
        ("an empty API key", ready, {**signed, "x-api-key": ""}, key_refusal),
        ("the API key in the query string", f"{ready}?api_key={LOCAL_KEY}", dict(signed), key_refusal),
    ]  # fmt: skip
    if stack.api == "rest":  # REST URLs carry the stage: a path outside it has no resource
        outside = server.url.removesuffix(server.config.stage_prefix) + "/v2/health/ready"
        cases.append(("a path outside the stage", outside, {**signed, **key}, MISSING_TOKEN))
    else:
        cases.append(("a stage that HTTP APIs do not have", server.url + "/prod/v2/health/ready",
                      {**signed, **key}, (404, {"error": "no route for GET /prod/v2/health/ready"})))  # fmt: skip
    return cases


def test_authorization(stack: Stack) -> None:
    problems = []
    for name, url, headers, expected in auth_requests(stack):
        STATS[stack.shape]["requests"] += 1
        status, answer_headers, body = http_request(url, "GET", headers, b"", timeout_s=TIMEOUT_S)
        got = (status, answer_of(answer_headers, body))
        if got != expected:
            problems.append(f"{name}: {got}, expected {expected}")
    assert not problems, "\n".join(problems)


# --- the worst-case echo through the runtime client ------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("model_name", (400, {"error": "model_name '" + '"' * 64 + "...(1999936 more characters)' in the body does not match the path's 'digits'"})),
        ("extra key", (200, None)),
    ],
)  # fmt: skip
def test_a_4_mb_echo_stays_small_and_the_environment_warm(stack: Stack, field: str, expected: tuple) -> None:
    request = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}
    quotes = '"' * 2_000_000  # 4 MB once JSON escapes each as \"
    if field == "model_name":
        request["model_name"] = quotes
    else:
        request[quotes] = quotes[:10]
    body = json.dumps(request).encode()
    assert 4_000_000 < len(body) < 4_100_000
    # application/octet-stream: base64 in the event (5.4 MB, under Lambda's 6 MB)
    status, headers, answer = stack.send("digits", "POST", "/v2/models/digits/infer", {"content-type": "application/octet-stream"}, body)
    assert len(answer) < 2_000, answer[:300]
    if expected[1] is None:
        assert status == 200 and [o["name"] for o in json.loads(answer)["outputs"]] == ["logits", "label", "score"]
    else:
        assert (status, json.loads(answer)) == expected
    # The next request is served by the same execution environment (Lambda would have thrown
    # it away after a Function.ResponseSizeTooLarge).
    status, _, _ = stack.send("digits", "GET", "/v2/health/ready", {}, b"")
    assert status == 200
    log = console_text(stack.consoles["digits"])
    assert "ResponseSizeTooLarge" not in log and "cold start" not in log
    assert [instance.cold_starts for instance in stack.servers["digits"].function.pool.instances] == [1]


# --- a concurrent burst of hostile and valid requests --------------------------------------------


def reference_requests(model: str) -> list[bytes]:
    if model == "digits":
        rows = [[float((i * 7 + j) % 17) for j in range(64)] for i in range(6)]
        return [json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": row}]}).encode() for row in rows]
    texts = ["A man is eating food.", "The stock market fell sharply.", "", "\u4eca\u65e5\u306f"]
    return [json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [t]}]}).encode() for t in texts]


def first_output(body: bytes) -> np.ndarray:
    return np.array(json.loads(body)["outputs"][0]["data"], dtype=np.float64)


@pytest.mark.parametrize("model", ["digits", "minilm"])
def test_burst(stack: Stack, model: str) -> None:
    path = f"/v2/models/{model}/infer"
    valid = reference_requests(model)
    json_type = {"content-type": "application/json"}

    def infer(body: bytes) -> np.ndarray:
        status, _, answer = stack.send(model, "POST", path, json_type, body)
        assert status == 200, answer[:300]
        return first_output(answer)

    references = [infer(body) for body in valid]
    # The quick ones: the limits group holds the slowest requests (64 texts, 5 MB bodies).
    hostile = [c for c in CORPUS if c.model == model and c.reaches_gateway and c.group != "limits"]
    rng = random.Random(11)
    jobs: list[tuple[str, object]] = [("hostile", case) for case in rng.sample(hostile, min(72, len(hostile)))]
    jobs += [("valid", index) for index in range(len(valid)) for _ in range(4)]
    rng.shuffle(jobs)

    def run(job: tuple[str, object]) -> str | None:
        kind, item = job
        if kind == "hostile":
            return stack.check(item)  # type: ignore[arg-type]
        got = infer(valid[item])  # type: ignore[index]
        return None if np.allclose(got, references[item], atol=1e-6) else f"valid request {item} changed"  # type: ignore[index]

    with ThreadPoolExecutor(max_workers=8) as pool:  # bounded: 8 clients at a time
        problems = [problem for problem in pool.map(run, jobs) if problem]
    assert not problems, "\n".join(problems)
    after = [infer(body) for body in valid]
    assert all(np.allclose(a, r, atol=1e-6) for a, r in zip(after, references))


# --- the environment survived --------------------------------------------------------------------


def test_no_request_cost_an_execution_environment(stack: Stack) -> None:
    """Last for each shape: the environments started with the servers answered everything."""
    for model, server in stack.servers.items():
        instances = server.function.pool.instances
        assert all(instance.alive for instance in instances), model
        assert [instance.cold_starts for instance in instances] == [1] * len(instances), model
        log = console_text(stack.consoles[model])
        assert "cold start" not in log and "discarding this execution environment" not in log, model
    stats = STATS[stack.shape]
    print(f"\n{stack.shape}: {stats['requests']} requests, {stats['5xx']} x 5xx "
          f"(+{stats['framing 501/505']} x 501/505 from the front), {stats['hangs']} hangs")  # fmt: skip
    assert stats["5xx"] == 0 and stats["hangs"] == 0
    assert stats["requests"] > 300
