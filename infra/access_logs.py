"""Structured (JSON, one object per request) access-log formats for both API types.

The two API types expose different ``$context`` variables, so each has its own field list;
the common keys carry the same names so one CloudWatch Logs Insights query reads both.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_logs as logs

HTTP_API_FIELDS: dict[str, str] = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "sourceIp": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "caller": "$context.identity.caller",
    "userArn": "$context.identity.userArn",
    "jwtSubject": "$context.authorizer.claims.sub",
    "routeKey": "$context.routeKey",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
    "error": "$context.error.message",
}

REST_API_FIELDS: dict[str, str] = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "sourceIp": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "caller": "$context.identity.caller",
    "userArn": "$context.identity.userArn",
    "apiKeyId": "$context.identity.apiKeyId",
    "resourcePath": "$context.resourcePath",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integration.latency",
    "integrationStatus": "$context.integration.status",
    "integrationError": "$context.integration.error",
    "error": "$context.error.message",
    "validationError": "$context.error.validationErrorString",
    "wafStatus": "$context.waf.status",
}


def http_api_format() -> apigw.AccessLogFormat:
    return apigw.AccessLogFormat.custom(json.dumps(HTTP_API_FIELDS, separators=(",", ":")))


def rest_api_format() -> apigw.AccessLogFormat:
    return apigw.AccessLogFormat.custom(json.dumps(REST_API_FIELDS, separators=(",", ":")))


@jsii.implements(apigwv2.IAccessLogSettings)
class HttpStageAccessLogs:
    """Access-log settings for an ``HttpStage``: jsii needs a class implementing the interface."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = http_api_format()

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format
