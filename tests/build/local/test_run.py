"""`slimserve local` / `invoke` end to end (build/local/run.py): real zips, real awslambdaric,
real sockets. What the handler receives and what comes back, failures and limits, concurrency,
targets and ``invoke_event``.

The runtime client is pip-installed once into the project's .cache/ (needs PyPI the first time,
then it is reused). Servers are shared per module where tests do not disturb each other.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from slimserve.build.errors import FunctionError, LocalRunError
from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.routing import Route
from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.run import LocalServer, invoke_event, running

from localkit import CACHE_DIR, quiet_console
from repo import REPO_ROOT

EVENTS = REPO_ROOT / "tests" / "events"


def function_pid(client: httpx.Client) -> int:
    return client.get("/environment").json()["pid"]


# --- the event the handler receives ----------------------------------------------------------


def test_get_request_becomes_a_payload_2_event(client: httpx.Client) -> None:
    before_ms = time.time() * 1000
    response = client.get(
        "/items/echo?a=1&a=2&b=x%20y",
        headers=[("X-Custom", "one"), ("X-Custom", "two"), ("User-Agent", "probe/1")],
        cookies={"c1": "v1", "c2": "v2"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["apigw-requestid"]
    event = response.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/items/echo"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert sorted(event["cookies"]) == ["c1=v1", "c2=v2"]
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-custom"] == "one,two"
    assert "cookie" not in headers
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-amzn-trace-id"].startswith("Root=1-")
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/items/echo",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe/1",
    }
    assert context["stage"] == "$default"
    assert context["requestId"] == response.headers["apigw-requestid"]
    assert before_ms - 1000 <= context["timeEpoch"] <= time.time() * 1000 + 1000
    assert event["isBase64Encoded"] is False
    assert "body" not in event and "pathParameters" not in event


def test_json_body_is_text_and_other_bodies_are_base64(client: httpx.Client) -> None:
    event = client.post("/echo", json={"x": [1, 2]}).json()
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"x": [1, 2]}
    assert event["requestContext"]["http"]["method"] == "POST"

    form = client.post("/echo", data={"a": "1"}).json()  # HTTP API treats forms as binary
    assert form["isBase64Encoded"] is True
    assert base64.b64decode(form["body"]) == b"a=1"


def test_binary_body_round_trips_through_base64(client: httpx.Client) -> None:
    payload = bytes(range(256)) * 64
    response = client.post(
        "/binary", content=payload, headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == payload


def test_chunked_request_body_is_reassembled(client: httpx.Client) -> None:
    chunks = iter([b"ab", b"cd", b"ef"])  # an iterator makes httpx send Transfer-Encoding: chunked
    event = client.post("/echo", content=chunks, headers={"content-type": "text/plain"}).json()
    assert event["body"] == "abcdef"
    assert "transfer-encoding" not in event["headers"]  # the gateway buffered the body
    assert event["headers"]["content-length"] == "6"


def test_cookies_and_headers_come_back(client: httpx.Client) -> None:
    response = client.get("/cookies")
    assert response.status_code == 201
    assert response.headers["x-answer"] == "42"
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_result_without_status_code_is_a_200_json_body(client: httpx.Client) -> None:
    response = client.get("/plain")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"hello": "world"}


def test_malformed_result_is_a_502(client: httpx.Client) -> None:
    response = client.get("/invalid")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}


def test_head_request_has_no_body(client: httpx.Client) -> None:
    response = client.head("/plain")
    assert response.status_code == 200
    assert response.content == b""


# --- failures ---------------------------------------------------------------------------------


def test_handler_exception_is_a_502_and_the_environment_stays_warm(client: httpx.Client) -> None:
    pid = function_pid(client)
    response = client.get("/raise")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}
    assert function_pid(client) == pid


def test_crash_is_a_502_and_the_next_request_gets_a_fresh_process(client: httpx.Client) -> None:
    pid = function_pid(client)
    response = client.get("/crash")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}
    assert client.get("/plain").status_code == 200
    assert function_pid(client) != pid


def test_function_timeout_is_a_502_and_the_environment_is_replaced(client: httpx.Client) -> None:
    pid = function_pid(client)
    started = time.monotonic()
    response = client.get("/sleep", params={"s": "5"})
    elapsed = time.monotonic() - started
    assert response.status_code == 502
    assert 1.9 <= elapsed < 4.5  # the manifest's 2 s function timeout, not the 5 s sleep
    assert client.get("/plain").status_code == 200
    assert function_pid(client) != pid


def test_body_over_10_mb_is_rejected_by_the_gateway(client: httpx.Client) -> None:
    response = client.post(
        "/echo", content=b"x" * (10 * 1024 * 1024 + 1), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}


def test_event_over_lambdas_6_mb_is_rejected(client: httpx.Client) -> None:
    # 5 MB of binary is under the gateway's 10 MB, but base64 makes the event 6.7 MB.
    response = client.post(
        "/echo", content=b"\x00" * (5 * 1024 * 1024), headers={"content-type": "image/png"}
    )
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}
    assert client.get("/plain").status_code == 200


def test_response_over_6_mb_is_a_502_and_the_next_request_works(client: httpx.Client) -> None:
    response = client.get("/big", params={"n": str(7 * 1024 * 1024)})
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}
    below_limit = client.get("/big", params={"n": str(5 * 1024 * 1024)})
    assert below_limit.status_code == 200
    assert len(below_limit.json()["data"]) == 5 * 1024 * 1024


def test_concurrency_runs_requests_in_separate_environments(
    probe_build: Path, cache_dir: Path
) -> None:
    with running(
        probe_build, LocalRunOptions(cache_dir=cache_dir, concurrency=2), console=quiet_console()
    ) as s:
        results: list[httpx.Response] = []

        def sleep_once() -> None:
            results.append(httpx.get(f"{s.url}/sleep", params={"s": "0.8"}, timeout=10))

        started = time.monotonic()
        threads = [threading.Thread(target=sleep_once) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        pids = {instance.pid for instance in s.function.pool.instances}
    assert [r.status_code for r in results] == [200, 200]
    assert elapsed < 1.5  # side by side, not one after the other
    assert len(pids) == 2


def test_integration_timeout_is_a_503(probe_build: Path, cache_dir: Path) -> None:
    config = GatewayConfig(integration_timeout_s=0.5, function_timeout_s=5)
    options = LocalRunOptions(config=config, cache_dir=cache_dir)
    with running(probe_build, options, console=quiet_console()) as s:
        started = time.monotonic()
        response = httpx.get(f"{s.url}/sleep", params={"s": "1.2"}, timeout=10)
        assert time.monotonic() - started < 1.1
        assert response.status_code == 503
        assert response.json() == {"message": "Service Unavailable"}


def test_busy_port_fails_before_the_function_starts(probe: LocalServer, probe_build: Path) -> None:
    port = int(probe.url.rsplit(":", 1)[1])
    started = time.monotonic()
    with (
        pytest.raises(LocalRunError, match=f"cannot listen on 127.0.0.1:{port}"),
        running(
            probe_build, LocalRunOptions(port=port, cache_dir=CACHE_DIR), console=quiet_console()
        ),
    ):
        pass
    assert time.monotonic() - started < 1


# --- gateway shapes other than the default ------------------------------------------------------


def test_rest_api_with_a_stage_sends_payload_1_events(probe_build: Path, cache_dir: Path) -> None:
    config = GatewayConfig(
        api_type="rest",
        payload_format="1.0",
        stage="prod",
        routes=(Route("ANY", "/"), Route("ANY", "/{proxy+}")),
        integration_timeout_s=29,
        function_timeout_s=5,
        binary_media_types=("image/png",),
    )
    options = LocalRunOptions(config=config, cache_dir=cache_dir)
    with running(probe_build, options, console=quiet_console()) as s:
        assert s.url.endswith("/prod")
        with httpx.Client(base_url=s.url, timeout=30) as http:
            event = http.get("/items/echo?a=1&a=2", headers={"X-Mixed-Case": "v"}).json()
            assert event["resource"] == "/{proxy+}"
            assert event["path"] == "/items/echo"
            assert event["requestContext"]["path"] == "/prod/items/echo"
            assert event["pathParameters"] == {"proxy": "items/echo"}
            assert event["queryStringParameters"] == {"a": "2"}
            assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
            assert event["headers"]["X-Mixed-Case"] == "v"
            assert "version" not in event
            outside = httpx.get(s.url.removesuffix("/prod") + "/items", timeout=10)
            assert outside.status_code == 403
            assert outside.json() == {"message": "Missing Authentication Token"}
            failing = http.get("/raise")
            assert failing.status_code == 502
            assert failing.json() == {"message": "Internal server error"}


# --- targets and invoke_event -------------------------------------------------------------------


def test_invoke_event_sends_a_recorded_event(probe_build: Path, cache_dir: Path) -> None:
    event = json.loads((EVENTS / "http-api-v2.json").read_text())
    event["rawPath"] = "/echo"
    options = LocalRunOptions(cache_dir=cache_dir)
    result = invoke_event(probe_build, event, options, console=quiet_console())
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == event

    event["rawPath"] = "/raise"
    with pytest.raises(FunctionError) as failure:
        invoke_event(probe_build, event, options, console=quiet_console())
    assert failure.value.document["errorType"] == "ValueError"
    assert failure.value.document["errorMessage"] == "boom from the handler"


@pytest.mark.slow
def test_digits_build_serves_inference(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("slimserve.build.pipeline.run", reason="the build pipeline is not there yet")
    digits_build: Path = request.getfixturevalue("digits_build")
    event = json.loads((EVENTS / "infer-digits.json").read_text())
    options = LocalRunOptions(cache_dir=CACHE_DIR)
    with running(digits_build, options, console=quiet_console()) as server:
        path = event["rawPath"]
        response = httpx.post(
            server.url + path,
            content=event["body"],
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["outputs"]
        # explain under the real runtime client: the Lambda context's remaining time bounds it,
        # and the predicted class's logit is base + sum of the pixel attributions.
        explained = httpx.post(server.url + path.replace("/infer", "/explain"), content=event["body"],
                               headers={"content-type": "application/json"}, timeout=30)
        assert explained.status_code == 200, explained.text
        outputs = {output["name"]: output["data"] for output in explained.json()["outputs"]}
        logit = max(outputs["logits"])
        assert abs(outputs["base_value"][0] + sum(outputs["attributions"]) - logit) < 1e-3
    result = invoke_event(digits_build, event, options, console=quiet_console())
    assert result["statusCode"] == 200, result
    assert json.loads(result["body"])["outputs"]

