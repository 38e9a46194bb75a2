"""Structured logs and metrics with Powertools for AWS Lambda.

Every invocation leaves one CloudWatch Embedded Metric Format record (no API calls, just a log
line): request latency, client and server errors, request payload size and the cold start as
metrics, and the request's status, path, latency and gateway request id as metadata, so each
request stays searchable in CloudWatch Logs Insights. The JSON log line (gateway request id as
correlation id, Lambda's cold-start flag) is written for every 4xx and 5xx; a successful
request's line is a DEBUG record, which Powertools' own sampling turns on for a share of
invocations (``POWERTOOLS_LOGGER_SAMPLE_RATE``) and ``SLIMSERVE_LOG_LEVEL=DEBUG`` for all: the
second line per request cost more than the EMF record (measured in build/bench/warm.py).
Instrumentation wraps the Lambda handler (not the ASGI app), so nothing accumulates when the app
runs elsewhere.
"""

from __future__ import annotations

import os
import time
from typing import IO, Any, Callable

from aws_lambda_powertools import Logger, Metrics
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
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body) if body.isascii() else len(body.encode("utf-8"))


def _request_id(event: Any) -> str | None:
    value = _correlation_id(event)
    return value if isinstance(value, str) else None


def _correlation_id(event: Any) -> Any:
    """``requestContext.requestId`` (Powertools' correlation_paths.API_GATEWAY_HTTP) as JMESPath
    reads it: whatever value is there, None when the event has no such path."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    return context.get("requestId") if isinstance(context, dict) else None


def instrument(handler: LambdaHandler, *, logger: Logger, metrics: Metrics) -> LambdaHandler:
    """One EMF record per invocation around ``handler``, and a JSON log line for every 4xx/5xx
    (for successes a DEBUG one: sampled by Powertools, see the module's docstring)."""

    def observed(event: Any, context: Any) -> dict[str, Any]:
        # What correlation_id_path=API_GATEWAY_HTTP would set, read directly: Powertools runs a
        # JMESPath query per invocation for it (~10 us of the handler's overhead).
        logger.set_correlation_id(_correlation_id(event))
        started = time.perf_counter()
        result = handler(event, context)
        elapsed_ms = (time.perf_counter() - started) * 1000
        status = int(result.get("statusCode", 0)) if isinstance(result, dict) else 0
        metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
        metrics.add_metric(name="RequestBytes", unit=MetricUnit.Bytes, value=_payload_bytes(event))
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1 if 400 <= status < 500 else 0)
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1 if status >= 500 else 0)
        path = (event.get("rawPath") or event.get("path")) if isinstance(event, dict) else None
        latency_ms = round(elapsed_ms, 3)
        metrics.add_metadata(key="status", value=status)
        metrics.add_metadata(key="path", value=path)
        metrics.add_metadata(key="latency_ms", value=latency_ms)
        metrics.add_metadata(key="request_id", value=_request_id(event))
        write = logger.info if status >= 400 or status == 0 else logger.debug
        write("request", status=status, latency_ms=latency_ms, path=path)
        return result

    with_logs = logger.inject_lambda_context(observed, clear_state=True)
    return metrics.log_metrics(with_logs, capture_cold_start_metric=True)
