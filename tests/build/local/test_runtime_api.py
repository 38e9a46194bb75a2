"""The local Lambda Runtime API, driven over HTTP the way awslambdaric drives it."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator

import pytest

from slimserve.build.local.runtime_api import MAX_RESPONSE_PAYLOAD_BYTES, RuntimeApiServer

ARN = "arn:aws:lambda:us-east-1:123456789012:function:test"


@pytest.fixture
def api() -> Iterator[RuntimeApiServer]:
    server = RuntimeApiServer(ARN)
    server.start()
    try:
        yield server
    finally:
        server.close()


def call(
    api: RuntimeApiServer, method: str, path: str, body: bytes | None = None, headers=None
) -> tuple[int, dict[str, str], bytes]:
    host, port = api.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def poll_in_background(api: RuntimeApiServer) -> tuple[threading.Thread, list]:
    answers: list = []
    thread = threading.Thread(
        target=lambda: answers.append(call(api, "GET", "/2018-06-01/runtime/invocation/next"))
    )
    thread.start()
    return thread, answers


def test_next_blocks_until_an_event_is_queued(api: RuntimeApiServer) -> None:
    thread, answers = poll_in_background(api)
    assert api.polled.wait(5)
    time.sleep(0.1)
    assert answers == []  # still waiting: nothing queued yet
    invocation = api.submit(b'{"hello": 1}', timeout_s=3)
    thread.join(5)
    status, headers, body = answers[0]
    assert status == 200
    assert body == b'{"hello": 1}'
    assert headers["Lambda-Runtime-Aws-Request-Id"] == invocation.request_id
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == ARN
    assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    deadline_ms = int(headers["Lambda-Runtime-Deadline-Ms"])
    assert 2000 < deadline_ms - time.time() * 1000 <= 3000

    status, _, _ = call(
        api, "POST", f"/2018-06-01/runtime/invocation/{invocation.request_id}/response", b'"ok"'
    )
    assert status == 202
    result = invocation.wait(1)
    assert result is not None and result.ok and result.payload == b'"ok"'


def test_a_caller_can_hand_the_runtime_its_own_ids_and_invoked_arn(api: RuntimeApiServer) -> None:
    """An emulator passes the request id its caller already saw (and the alias ARN invoked)."""
    thread, answers = poll_in_background(api)
    alias = f"{ARN}:live"
    invocation = api.submit(
        b"{}", timeout_s=3, request_id="req-1", trace_id="Root=1-abc", invoked_function_arn=alias
    )
    thread.join(5)
    _, headers, _ = answers[0]
    assert invocation.request_id == headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
    assert headers["Lambda-Runtime-Trace-Id"] == "Root=1-abc"
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == alias


def test_error_post_completes_the_invocation_as_failed(api: RuntimeApiServer) -> None:
    invocation = api.submit(b"{}", timeout_s=3)
    thread, _ = poll_in_background(api)
    thread.join(5)
    document = {"errorType": "ValueError", "errorMessage": "boom", "stackTrace": []}
    status, _, _ = call(
        api,
        "POST",
        f"/2018-06-01/runtime/invocation/{invocation.request_id}/error",
        json.dumps(document).encode(),
        {"Lambda-Runtime-Function-Error-Type": "Unhandled"},
    )
    assert status == 202
    result = invocation.wait(1)
    assert result is not None and not result.ok
    assert result.error_document()["errorMessage"] == "boom"


def test_unknown_or_repeated_request_ids_are_refused(api: RuntimeApiServer) -> None:
    status, _, body = call(api, "POST", "/2018-06-01/runtime/invocation/nope/response", b"{}")
    assert status == 400
    assert json.loads(body)["errorType"] == "InvalidRequestID"

    invocation = api.submit(b"{}", timeout_s=3)
    thread, _ = poll_in_background(api)
    thread.join(5)
    path = f"/2018-06-01/runtime/invocation/{invocation.request_id}/response"
    assert call(api, "POST", path, b"1")[0] == 202
    assert call(api, "POST", path, b"2")[0] == 400
    assert invocation.wait(0).payload == b"1"


def test_too_large_response_is_refused_like_lambda(api: RuntimeApiServer) -> None:
    invocation = api.submit(b"{}", timeout_s=3)
    thread, _ = poll_in_background(api)
    thread.join(5)
    status, _, body = call(
        api,
        "POST",
        f"/2018-06-01/runtime/invocation/{invocation.request_id}/response",
        b"x" * (MAX_RESPONSE_PAYLOAD_BYTES + 1),
    )
    assert status == 413
    assert json.loads(body)["errorType"] == "RequestEntityTooLarge"
    result = invocation.wait(1)
    assert result is not None and result.error_type == "Function.ResponseSizeTooLarge"
    assert result.environment_lost and api.contract_broken.is_set()


def test_init_error_is_recorded(api: RuntimeApiServer) -> None:
    document = {
        "errorType": "Runtime.ImportModuleError",
        "errorMessage": "Unable to import module 'app': No module named 'numpy'",
    }
    status, _, _ = call(
        api,
        "POST",
        "/2018-06-01/runtime/init/error",
        json.dumps(document).encode(),
        {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
    )
    assert status == 202
    assert api.init_failed.is_set()
    assert api.init_error is not None
    assert api.init_error.describe() == (
        "Runtime.ImportModuleError: Unable to import module 'app': No module named 'numpy'"
    )


def test_one_invocation_at_a_time(api: RuntimeApiServer) -> None:
    api.submit(b"{}", timeout_s=3)
    with pytest.raises(RuntimeError, match="one invocation at a time"):
        api.submit(b"{}", timeout_s=3)


def test_a_dead_process_fails_what_it_held(api: RuntimeApiServer) -> None:
    invocation = api.submit(b"{}", timeout_s=3)
    thread, _ = poll_in_background(api)
    thread.join(5)
    api.fail_all("Runtime.ExitError", "Runtime exited with error: exit status 3")
    result = invocation.wait(1)
    assert result is not None and result.error_type == "Runtime.ExitError"
    assert result.environment_lost
    later = api.submit(b"{}", timeout_s=3)  # nobody will ever poll for it: fails at once
    assert later.wait(0) is not None and later.wait(0).error_type == "Runtime.ExitError"


def test_close_releases_a_waiting_poll() -> None:
    api = RuntimeApiServer(ARN)
    api.start()
    thread, _ = poll_in_background(api)
    assert api.polled.wait(5)
    api.close()
    thread.join(5)
    assert not thread.is_alive()
