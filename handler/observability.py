"""Structured logs and metrics with Powertools for AWS Lambda.

Logs are JSON with the gateway's request id as correlation id and Lambda's cold-start flag;
metrics go out in CloudWatch Embedded Metric Format (no API calls, just a log line): request
latency, client and server errors, request payload size, and the cold start. Instrumentation
wraps the Lambda handler (not the ASGI app), so nothing accumulates when the app runs elsewhere.
"""

from __future__ import annotations

import os
import time
from typing import IO, Any, Callable

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "slimserve"

LambdaHandler = Callable[[Any, Any], dict[str, Any]]


def make_logger(level: str = "INFO", *, stream: IO[str] | None = None) -> Logger:
    # Named like the app's logging.getLogger("slimserve"): the app's error logs become JSON too.
    # Powertools configures one handler per service name, on first use (stdout by default).
    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE), level=level, stream=stream)


def make_metrics(model_name: str) -> Metrics:
    metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "slimserve"), service=SERVICE)
    metrics.set_default_dimensions(model=model_name)
    return metrics


def _payload_bytes(event: Any) -> int:
    body = event.get("body") if isinstance(event, dict) else None
    if not isinstance(body, str):
        return 0
    # base64 inflates by 4/3; report what the client sent.
    return len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode("utf-8"))


def instrument(handler: LambdaHandler, *, logger: Logger, metrics: Metrics) -> LambdaHandler:
    """One JSON log line and one EMF record per invocation, around ``handler``."""

    def observed(event: Any, context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        result = handler(event, context)
        elapsed_ms = (time.perf_counter() - started) * 1000
        status = int(result.get("statusCode", 0)) if isinstance(result, dict) else 0
        metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
        metrics.add_metric(name="RequestBytes", unit=MetricUnit.Bytes, value=_payload_bytes(event))
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1 if 400 <= status < 500 else 0)
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1 if status >= 500 else 0)
        logger.info(
            "request",
            status=status,
            latency_ms=round(elapsed_ms, 3),
            path=(event.get("rawPath") or event.get("path")) if isinstance(event, dict) else None,
        )
        return result

    with_logs = logger.inject_lambda_context(observed, correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    return metrics.log_metrics(with_logs, capture_cold_start_metric=True)
