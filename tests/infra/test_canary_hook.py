"""The CodeDeploy hooks' logic (infra/canary_hook.py), offline: recorded CodeDeploy lifecycle
events, and boto3 Lambda/CodeDeploy clients answered by botocore's Stubber (no network)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from slimserve.infra import canary_hook

# What CodeDeploy sends a lifecycle hook (AWS docs: "Lifecycle event hooks for an AWS Lambda
# deployment"), with a real-looking deployment id and an opaque execution id.
BEFORE_EVENT = {
    "DeploymentId": "d-EXAMPLE123",
    "LifecycleEventHookExecutionId": "eyJlbmNyeXB0ZWREYXRhIjoiQ0FOQVJZIn0=",
}
VERSION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:slimserve-digits-Fn:7"

TOP1 = {"output": "logits", "metric": "top1", "threshold": 0.99}
COSINE = {"output": "embedding", "metric": "cosine", "threshold": 0.95}


def _canary(check: dict[str, Any], expected: list[list[float]]) -> dict[str, Any]:
    return {
        "model": "digits",
        "version": "1",
        "check": check,
        "samples": [
            {
                "request": {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [i]}]},
                "expected": values,
            }
            for i, values in enumerate(expected)
        ],
    }


def _http_result(status: int, document: Any) -> dict[str, Any]:
    """An Invoke response whose payload is the handler's API Gateway proxy result."""
    payload = json.dumps(
        {
            "statusCode": status,
            "headers": {"content-type": "application/json"},
            "body": json.dumps(document),
            "isBase64Encoded": False,
        }
    ).encode()
    return {
        "StatusCode": 200,
        "ExecutedVersion": "7",
        "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
    }


def _crash(message: str) -> dict[str, Any]:
    payload = json.dumps({"errorMessage": message, "errorType": "Runtime.ExitError"}).encode()
    return {
        "StatusCode": 200,
        "FunctionError": "Unhandled",
        "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
    }


def _infer_answer(name: str, values: list[float]) -> dict[str, Any]:
    return {
        "model_name": "digits",
        "model_version": "1",
        "outputs": [{"name": name, "datatype": "FP32", "shape": [1, len(values)], "data": values}],
    }


def _healthy() -> list[tuple[str, str, dict[str, Any]]]:
    # Fresh responses for every test: a StreamingBody can be read once.
    return [
        ("GET", "/v2/health/ready", _http_result(200, {"ready": True})),
        ("GET", "/v2/models/digits/ready", _http_result(200, {"name": "digits", "ready": True})),
    ]


def _metadata() -> tuple[str, str, dict[str, Any]]:
    return ("GET", "/v2/models/digits", _http_result(200, {"name": "digits", "versions": ["1"]}))


@pytest.fixture()
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber, Any, Stubber]]:
    # Stubbed clients never send a request; the credentials only let botocore build them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv(canary_hook.ENV_TARGET, VERSION_ARN)
    lambda_client = boto3.client("lambda", region_name="us-east-1")
    codedeploy_client = boto3.client("codedeploy", region_name="us-east-1")
    with Stubber(lambda_client) as lambda_stub, Stubber(codedeploy_client) as codedeploy_stub:
        yield lambda_client, lambda_stub, codedeploy_client, codedeploy_stub
        lambda_stub.assert_no_pending_responses()
        codedeploy_stub.assert_no_pending_responses()


def _expect_invocations(stub: Stubber, calls: list[tuple[str, str, dict[str, Any]]]) -> None:
    for _method, _path, response in calls:
        stub.add_response(
            "invoke",
            response,
            {
                "FunctionName": VERSION_ARN,
                "InvocationType": "RequestResponse",
                "Payload": _EventFor(_method, _path),
            },
        )


class _EventFor:
    """Matches the Payload the hook sends: an HTTP API event for this method and path."""

    def __init__(self, method: str, path: str) -> None:
        self.method, self.path = method, path

    def __eq__(self, payload: object) -> bool:
        event = json.loads(payload)  # type: ignore[arg-type]
        return (
            event["version"] == "2.0"
            and event["requestContext"]["http"]["method"] == self.method
            and event["rawPath"] == self.path
        )

    def __repr__(self) -> str:
        return f"<HTTP API event {self.method} {self.path}>"


def _expect_report(stub: Stubber, status: str) -> None:
    stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": BEFORE_EVENT["LifecycleEventHookExecutionId"]},
        {
            "deploymentId": BEFORE_EVENT["DeploymentId"],
            "lifecycleEventHookExecutionId": BEFORE_EVENT["LifecycleEventHookExecutionId"],
            "status": status,
        },
    )


def _write_canary(folder: Path, canary: dict[str, Any]) -> Path:
    (folder / canary_hook.CANARY_FILE).write_text(json.dumps(canary), encoding="utf-8")
    return folder


def _run_before(clients: Any, folder: Path) -> dict[str, Any]:
    lambda_client, _, codedeploy_client, _ = clients
    return canary_hook.before_allow_traffic(
        BEFORE_EVENT,
        None,
        lambda_client=lambda_client,
        codedeploy_client=codedeploy_client,
        canary_folder=folder,
    )


def test_a_version_that_answers_like_the_build_succeeds(clients: Any, tmp_path: Path) -> None:
    expected = [[9.0, 1.0, 0.0], [0.0, 1.0, 7.5]]
    folder = _write_canary(tmp_path, _canary(TOP1, expected))
    _, lambda_stub, _, codedeploy_stub = clients
    # int8 rounding on another CPU moves the values, not the winning class: still a pass.
    answers = [[8.7, 1.2, 0.1], [0.2, 1.1, 7.1]]
    _expect_invocations(
        lambda_stub,
        [
            *_healthy(),
            _metadata(),
            *(("POST", "/v2/models/digits/infer", _http_result(200, _infer_answer("logits", a))) for a in answers),
        ],
    )
    _expect_report(codedeploy_stub, "Succeeded")

    assert _run_before(clients, folder) == {"status": "Succeeded", "failures": []}


def test_a_flipped_answer_fails_the_deployment(clients: Any, tmp_path: Path) -> None:
    folder = _write_canary(tmp_path, _canary(TOP1, [[9.0, 1.0, 0.0], [0.0, 1.0, 7.5]]))
    _, lambda_stub, _, codedeploy_stub = clients
    _expect_invocations(
        lambda_stub,
        [
            *_healthy(),
            _metadata(),
            ("POST", "/v2/models/digits/infer", _http_result(200, _infer_answer("logits", [9.0, 1.0, 0.0]))),
            ("POST", "/v2/models/digits/infer", _http_result(200, _infer_answer("logits", [7.0, 1.0, 0.0]))),
        ],
    )
    _expect_report(codedeploy_stub, "Failed")

    outcome = _run_before(clients, folder)
    assert outcome == {"status": "Failed", "failures": ["sample 1: top-1 is 0, recorded 2"]}


def test_an_unready_version_fails_before_any_inference(clients: Any, tmp_path: Path) -> None:
    folder = _write_canary(tmp_path, _canary(TOP1, [[1.0, 0.0]]))
    _, lambda_stub, _, codedeploy_stub = clients
    _expect_invocations(lambda_stub, [("GET", "/v2/health/ready", _http_result(503, {"error": "loading"}))])
    _expect_report(codedeploy_stub, "Failed")

    outcome = _run_before(clients, folder)
    assert outcome["failures"] == ["GET /v2/health/ready answered 503: {'error': 'loading'}"]


def test_a_crashing_version_fails_and_the_hook_still_reports(clients: Any, tmp_path: Path) -> None:
    folder = _write_canary(tmp_path, _canary(TOP1, [[1.0, 0.0]]))
    _, lambda_stub, _, codedeploy_stub = clients
    _expect_invocations(lambda_stub, [("GET", "/v2/health/ready", _crash("model file not found"))])
    _expect_report(codedeploy_stub, "Failed")

    outcome = _run_before(clients, folder)
    assert outcome["failures"] == ["GET /v2/health/ready: the function failed: model file not found"]


def test_an_api_error_is_reported_as_failed_not_raised(clients: Any, tmp_path: Path) -> None:
    folder = _write_canary(tmp_path, _canary(TOP1, [[1.0, 0.0]]))
    _, lambda_stub, _, codedeploy_stub = clients
    lambda_stub.add_client_error("invoke", service_error_code="TooManyRequestsException", http_status_code=429)
    _expect_report(codedeploy_stub, "Failed")

    (failure,) = _run_before(clients, folder)["failures"]
    assert failure.startswith("the hook could not run its checks: TooManyRequestsException:")


def test_a_version_serving_another_model_fails(clients: Any, tmp_path: Path) -> None:
    folder = _write_canary(tmp_path, _canary(TOP1, [[1.0, 0.0]]))
    _, lambda_stub, _, codedeploy_stub = clients
    _expect_invocations(
        lambda_stub,
        [*_healthy(), ("GET", "/v2/models/digits", _http_result(200, {"name": "digits", "versions": ["2"]}))],
    )
    _expect_report(codedeploy_stub, "Failed")

    assert _run_before(clients, folder)["failures"] == [
        "the new version serves digits ['2'], expected digits 1"
    ]


def test_without_recorded_requests_health_and_metadata_decide(clients: Any, tmp_path: Path) -> None:
    folder = _write_canary(tmp_path, {"model": "digits", "version": "1", "check": None, "samples": []})
    _, lambda_stub, _, codedeploy_stub = clients
    _expect_invocations(lambda_stub, [*_healthy(), _metadata()])
    _expect_report(codedeploy_stub, "Succeeded")

    assert _run_before(clients, folder)["status"] == "Succeeded"


def test_after_allow_traffic_checks_readiness_through_the_target(clients: Any, tmp_path: Path) -> None:
    folder = _write_canary(tmp_path, _canary(TOP1, [[1.0, 0.0]]))
    lambda_client, lambda_stub, codedeploy_client, codedeploy_stub = clients
    _expect_invocations(lambda_stub, _healthy())
    _expect_report(codedeploy_stub, "Succeeded")

    outcome = canary_hook.after_allow_traffic(
        BEFORE_EVENT,
        None,
        lambda_client=lambda_client,
        codedeploy_client=codedeploy_client,
        canary_folder=folder,
    )
    assert outcome["status"] == "Succeeded"


@pytest.mark.parametrize(
    ("check", "pairs", "failures"),
    [
        (TOP1, [([3.0, 1.0], [2.0, 1.9])], []),
        (TOP1, [([3.0, 1.0], [1.0, 3.0])], ["sample 0: top-1 is 1, recorded 0"]),
        # 1 flip in 4 is within a 0.25 tolerance (threshold 0.75), not within 0.01.
        ({**TOP1, "threshold": 0.75}, [([1.0, 0.0], [0.0, 1.0])] + [([1.0, 0.0], [1.0, 0.0])] * 3, []),
        (COSINE, [([1.0, 0.0, 0.0], [0.99, 0.05, 0.0])], []),
        (
            COSINE,
            [([1.0, 0.0, 0.0], [0.5, 0.8, 0.0])],
            ["sample 0: cosine 0.5300 with the recorded vector, below 0.9500"],
        ),
        (TOP1, [([1.0, 0.0], [1.0, 0.0, 0.0])], ["sample 0: 3 values, recorded 2"]),
    ],
)
def test_compare_applies_the_gates_tolerance(
    check: dict[str, Any], pairs: list[tuple[list[float], list[float]]], failures: list[str]
) -> None:
    assert canary_hook.compare(check, pairs) == failures


def test_the_hook_event_is_one_the_handler_serves(lambda_handler: Any, digits_build: Path) -> None:
    """End to end without AWS: the build's recorded canary, replayed through the hook's own
    invoker against the real Lambda handler of that build, passes; a tampered record fails."""
    from slimserve.handler.manifest import load_manifest

    manifest = load_manifest(digits_build / "manifest.json")
    assert manifest.canary is not None
    canary = {
        "model": manifest.name,
        "version": manifest.version,
        "check": manifest.canary.check.model_dump(),
        "samples": [sample.model_dump() for sample in manifest.canary.samples],
    }

    class InProcessLambda:
        def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
            result = json.dumps(lambda_handler(json.loads(Payload), None)).encode()
            return {"StatusCode": 200, "Payload": io.BytesIO(result)}

    invoke = canary_hook.lambda_invoker(InProcessLambda(), VERSION_ARN, "d-LOCAL")
    assert canary_hook.check_canary(invoke, canary) == []

    first = canary["samples"][0]
    wrong = list(first["expected"])
    wrong[canary_hook.top1(wrong)] = min(wrong) - 1.0  # another class wins the record
    canary["samples"][0] = {**first, "expected": wrong}
    (failure,) = canary_hook.check_canary(invoke, canary)
    assert failure.startswith("sample 0: top-1 is ")
