"""CodeDeploy lifecycle hooks of the live alias: a new version answers correctly before it takes traffic.

This file is the code of two small Lambda functions (infra/hooks.py deploys them). It runs on
the Lambda Python runtime with only the standard library and boto3, and reads ``canary.json``
beside it, which synth writes from the manifest's ``canary`` (build/pipeline/canary.py).

- ``before_allow_traffic``: CodeDeploy calls it after the new version is published and before
  any traffic shifts. It invokes that version (its ARN is ``SLIMSERVE_HOOK_TARGET``) with
  API-Gateway-shaped events: readiness and model metadata first, then every recorded held-out
  request, and compares the answers with the recorded ones (``CanaryCheck``: top-1 agreement or
  cosine, at the build gate's tolerance). Any difference fails the deployment, so CodeDeploy
  rolls back and the bad version never serves a user.
- ``after_allow_traffic``: once all traffic is on the new version, readiness through the alias.

Both always report a status to CodeDeploy (``PutLifecycleEventHookExecutionStatus``), also when
something unexpected happens: an unreported hook would hold the deployment for an hour.
"""

from __future__ import annotations

import base64
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV_TARGET = "SLIMSERVE_HOOK_TARGET"
CANARY_FILE = "canary.json"
USER_AGENT = "slimserve-canary"
INVOKE_READ_TIMEOUT_S = 300
SUCCEEDED, FAILED = "Succeeded", "Failed"

Invoke = Callable[[str, str, "dict[str, Any] | None"], "tuple[int, Any]"]


class CheckFailed(Exception):
    """The target answered, but not as the recorded build did."""


# --- the comparison ------------------------------------------------------------------------


def top1(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def cosine(a: list[float], b: list[float]) -> float:
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b)) / max(norms, 1e-12)


def compare(check: dict[str, Any], answers: list[tuple[list[float], list[float]]]) -> list[str]:
    """Failures (empty when the answers pass) for (expected, actual) pairs under ``check``."""
    failures = [
        f"sample {index}: {len(actual)} values, recorded {len(expected)}"
        for index, (expected, actual) in enumerate(answers)
        if len(actual) != len(expected)
    ]
    if failures:
        return failures
    threshold = float(check["threshold"])
    if check["metric"] == "cosine":
        return [
            f"sample {index}: cosine {value:.4f} with the recorded vector, below {threshold:.4f}"
            for index, (expected, actual) in enumerate(answers)
            if (value := cosine(expected, actual)) < threshold
        ]
    flips = [
        f"sample {index}: top-1 is {top1(actual)}, recorded {top1(expected)}"
        for index, (expected, actual) in enumerate(answers)
        if top1(actual) != top1(expected)
    ]
    agreement = 1.0 - len(flips) / len(answers)
    # A small epsilon: 1 - 0.01 is not exactly 0.99 in binary floating point.
    return flips if agreement + 1e-9 < threshold else []


# --- talking to the function -----------------------------------------------------------------


def http_api_event(method: str, path: str, body: dict[str, Any] | None, request_id: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, what the handler's Mangum adapter reads."""
    now = time.time()
    headers = {"user-agent": USER_AGENT, "x-request-id": request_id}
    if body is not None:
        headers["content-type"] = "application/json"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "canary",
            "apiId": "canary",
            "domainName": "canary.invalid",
            "domainPrefix": "canary",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": USER_AGENT,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def lambda_invoker(client: Any, target: str, deployment_id: str) -> Invoke:
    """Invoke ``target`` (a version or alias ARN) synchronously with one HTTP request."""
    counter = iter(range(1_000_000))

    def invoke(method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        request_id = f"{deployment_id}-{next(counter)}"
        response = client.invoke(
            FunctionName=target,
            InvocationType="RequestResponse",
            Payload=json.dumps(http_api_event(method, path, body, request_id)).encode("utf-8"),
        )
        result = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            message = result.get("errorMessage") if isinstance(result, dict) else result
            raise CheckFailed(f"{method} {path}: the function failed: {message}")
        if not isinstance(result, dict) or "statusCode" not in result:
            raise CheckFailed(f"{method} {path}: not an HTTP result: {str(result)[:200]}")
        raw = result.get("body") or ""
        if result.get("isBase64Encoded"):
            raw = base64.b64decode(raw).decode("utf-8", "replace")
        try:
            document = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            document = raw
        return int(result["statusCode"]), document

    return invoke


# --- the checks ------------------------------------------------------------------------------


def expect_ok(invoke: Invoke, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    status, document = invoke(method, path, body)
    if status != 200:
        raise CheckFailed(f"{method} {path} answered {status}: {str(document)[:300]}")
    return document


def check_health(invoke: Invoke, canary: dict[str, Any]) -> None:
    model = canary["model"]
    if expect_ok(invoke, "GET", "/v2/health/ready") != {"ready": True}:
        raise CheckFailed("GET /v2/health/ready did not answer {'ready': true}")
    ready = expect_ok(invoke, "GET", f"/v2/models/{model}/ready")
    if not isinstance(ready, dict) or ready.get("ready") is not True:
        raise CheckFailed(f"model {model} is not ready: {ready}")


def check_canary(invoke: Invoke, canary: dict[str, Any]) -> list[str]:
    """Health, metadata, then every recorded request; the failures (empty: the version is good)."""
    check_health(invoke, canary)
    model, version = canary["model"], canary["version"]
    metadata = expect_ok(invoke, "GET", f"/v2/models/{model}")
    if metadata.get("name") != model or version not in metadata.get("versions", []):
        raise CheckFailed(f"the new version serves {metadata.get('name')} {metadata.get('versions')}, expected {model} {version}")
    check, samples = canary.get("check"), canary.get("samples", [])
    if not check or not samples:
        print(json.dumps({"canary": "no recorded requests in the manifest; health and metadata checked only"}))
        return []
    answers = []
    for sample in samples:
        document = expect_ok(invoke, "POST", f"/v2/models/{model}/infer", sample["request"])
        outputs = {output["name"]: output for output in document.get("outputs", [])}
        if check["output"] not in outputs:
            raise CheckFailed(f"the answer has no output {check['output']!r}: {sorted(outputs)}")
        answers.append((sample["expected"], [float(value) for value in outputs[check["output"]]["data"]]))
    return compare(check, answers)


# --- the two hooks ---------------------------------------------------------------------------


def load_canary(folder: Path | None = None) -> dict[str, Any]:
    return json.loads(((folder or Path(__file__).parent) / CANARY_FILE).read_text(encoding="utf-8"))


def run_hook(
    event: dict[str, Any],
    checks: Callable[[Invoke, dict[str, Any]], list[str]],
    *,
    lambda_client: Any = None,
    codedeploy_client: Any = None,
    canary_folder: Path | None = None,
) -> dict[str, Any]:
    """Run ``checks`` against ``$SLIMSERVE_HOOK_TARGET`` and report the outcome to CodeDeploy,
    whatever happens (clients default to boto3's)."""
    if lambda_client is None or codedeploy_client is None:
        import boto3
        from botocore.config import Config

        # A cold new version may take its init (model download, SnapStart restore) plus a full
        # function timeout to answer: wait longer than botocore's default 60 s.
        invoke_config = Config(read_timeout=INVOKE_READ_TIMEOUT_S, retries={"mode": "standard"})
        lambda_client = lambda_client or boto3.client("lambda", config=invoke_config)
        codedeploy_client = codedeploy_client or boto3.client("codedeploy")
    deployment_id = event["DeploymentId"]
    target = os.environ.get(ENV_TARGET, "")
    try:
        canary = load_canary(canary_folder)
        failures = checks(lambda_invoker(lambda_client, target, deployment_id), canary)
    except CheckFailed as exc:
        failures = [str(exc)]
    except Exception as exc:  # report, never leave CodeDeploy waiting for the hook's timeout
        failures = [f"the hook could not run its checks: {type(exc).__name__}: {exc}"]
    status = FAILED if failures else SUCCEEDED
    print(json.dumps({"deployment": deployment_id, "target": target, "status": status, "failures": failures}))
    codedeploy_client.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id,
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )
    return {"status": status, "failures": failures}


def check_health_only(invoke: Invoke, canary: dict[str, Any]) -> list[str]:
    check_health(invoke, canary)
    return []


def before_allow_traffic(event: dict[str, Any], context: Any, **overrides: Any) -> dict[str, Any]:
    """Handler of the BeforeAllowTraffic hook. ``overrides`` (clients, canary folder) are for
    tests; Lambda passes none."""
    return run_hook(event, check_canary, **overrides)


def after_allow_traffic(event: dict[str, Any], context: Any, **overrides: Any) -> dict[str, Any]:
    """Handler of the AfterAllowTraffic hook."""
    return run_hook(event, check_health_only, **overrides)
