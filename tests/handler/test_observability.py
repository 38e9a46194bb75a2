"""Powertools: one JSON log line with the gateway request id as correlation id and the cold
start flag, and one Embedded Metric Format record per invocation."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass

import pytest

from slimserve.handler.observability import instrument, make_logger, make_metrics

from eventkit import make_event


@dataclass
class FakeContext:
    function_name: str = "slimserve-digits"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:slimserve-digits"
    aws_request_id: str = "5a2c7f0e-1111-2222-3333-444455556666"


@pytest.fixture()
def observed(lambda_handler, monkeypatch: pytest.MonkeyPatch):
    # Powertools configures one log handler per service name, once per process: a fresh service
    # name and stream keep this test independent of any other Logger made in the same worker.
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "slimserve-test")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"slimserve-test-{uuid.uuid4().hex[:8]}")
    import aws_lambda_powertools.metrics.provider.cold_start as cold_start

    monkeypatch.setattr(cold_start, "is_cold_start", True)
    logs = io.StringIO()

    def make():
        return instrument(lambda_handler, logger=make_logger("INFO", stream=logs), metrics=make_metrics("digits"))

    return make, logs


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_logs_and_metrics_per_invocation(observed, capsys: pytest.CaptureFixture[str]) -> None:
    event = make_event("http", "GET", "/v2/models/nope")
    make, log_stream = observed
    result = make()(event, FakeContext())
    assert result["statusCode"] == 404
    lines = records(capsys.readouterr().out)
    logs = [line for line in records(log_stream.getvalue()) if line.get("message") == "request"]
    assert len(logs) == 1
    log = logs[0]
    assert log["correlation_id"] == event["requestContext"]["requestId"]
    assert log["status"] == 404 and log["path"] == "/v2/models/nope"
    assert "cold_start" in log and log["function_request_id"] == FakeContext.aws_request_id
    emf = [line for line in lines if "_aws" in line]
    names = {m["Name"] for record in emf for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Latency", "RequestBytes", "ClientErrors", "ServerErrors", "ColdStart"} <= names
    request_metrics = next(record for record in emf if "Latency" in record)
    assert request_metrics["ClientErrors"] in (1.0, [1.0]) and request_metrics["ServerErrors"] in (0.0, [0.0])
    assert request_metrics["model"] == "digits"
    assert request_metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "slimserve-test"
