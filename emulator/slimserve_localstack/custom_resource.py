"""Lambda-backed CloudFormation custom resources (``Custom::*``) for LocalStack community.

LocalStack's community CloudFormation has no provider for ``AWS::CloudFormation::CustomResource``
(``get_resource_type`` says "overwritten in PRO"), so with CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES
a ``Custom::CDKBucketDeployment`` is "deployed as a fallback" and its Lambda never runs: the
model object of ``package=s3`` is never uploaded. This provider does what CloudFormation does:
invoke the ServiceToken function with the custom resource request, give it a ResponseURL (a
route on LocalStack's own gateway), and wait for the response the function PUTs there.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

from botocore.config import Config
from localstack import config
from localstack.aws.connect import connect_to
from localstack.http import Response, route
from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)
from localstack.services.edge import ROUTER
from werkzeug import Request

LOG = logging.getLogger(__name__)
_PREFIX = "/_slimserve/cfn-response"
# CloudFormation waits up to an hour; Lambda itself stops at 15 minutes.
_RESPONSE_WAIT_S = 960


class _Responses:
    """PUT target for ResponseURLs: one slot per request id."""

    def __init__(self) -> None:
        self._bodies: dict[str, dict[str, Any]] = {}
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def expect(self, request_id: str) -> threading.Event:
        with self._lock:
            event = self._events[request_id] = threading.Event()
        return event

    def take(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._events.pop(request_id, None)
            return self._bodies.pop(request_id, None)

    @route(f"{_PREFIX}/<request_id>", methods=["PUT"])
    def put(self, request: Request, request_id: str) -> Response:
        try:
            body = json.loads(request.get_data() or b"{}")
        except json.JSONDecodeError:
            body = {"Status": "FAILED", "Reason": "the custom resource sent a non-JSON response"}
        with self._lock:
            event = self._events.get(request_id)
            if event is None:
                return Response(status=404)
            self._bodies[request_id] = body
        event.set()
        return Response(status=200)


_responses: _Responses | None = None
_responses_lock = threading.Lock()
# (stack id, logical id) -> physical id, for the Delete/Update requests CloudFormation sends.
_physical_ids: dict[tuple[str, str], str] = {}


def _response_store() -> _Responses:
    global _responses
    with _responses_lock:
        if _responses is None:
            _responses = _Responses()
            ROUTER.add(_responses)
        return _responses


def _cfn_strings(value: Any) -> Any:
    """CloudFormation hands custom resources every scalar as a string ("false", "512")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return {k: _cfn_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cfn_strings(v) for v in value]
    return value


class LambdaCustomResourceProvider(ResourceProvider[dict]):
    TYPE = "AWS::CloudFormation::CustomResource"
    SCHEMA = {
        "typeName": TYPE,
        "properties": {"ServiceToken": {"type": "string"}, "PhysicalResourceId": {"type": "string"}},
        "required": ["ServiceToken"],
        "primaryIdentifier": ["/properties/PhysicalResourceId"],
        "additionalProperties": True,
    }

    def create(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        return self._run("Create", request)

    def update(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        return self._run("Update", request)

    def delete(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        return self._run("Delete", request)

    def _run(self, request_type: str, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        properties = {
            k: v for k, v in (request.desired_state or {}).items() if k != "PhysicalResourceId"
        }
        service_token = properties.get("ServiceToken", "")
        if ":lambda:" not in service_token:
            return ProgressEvent(
                OperationStatus.FAILED,
                resource_model={},
                message=f"custom resource ServiceToken {service_token!r} is not a Lambda ARN",
            )
        key = (request.stack_id, request.logical_resource_id)
        request_id = str(uuid.uuid4())
        host = config.GATEWAY_LISTEN[0]
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": service_token,
            "ResponseURL": f"http://{host.host or '127.0.0.1'}:{host.port}{_PREFIX}/{request_id}",
            "StackId": request.stack_id,
            "RequestId": request_id,
            "ResourceType": request.resource_type,
            "LogicalResourceId": request.logical_resource_id,
            "ResourceProperties": _cfn_strings(properties),
        }
        if request_type != "Create" and key in _physical_ids:
            event["PhysicalResourceId"] = _physical_ids[key]
        if request_type == "Update" and request.previous_state:
            event["OldResourceProperties"] = _cfn_strings(request.previous_state)

        store = _response_store()
        arrived = store.expect(request_id)
        client = connect_to(
            aws_access_key_id=request.account_id,
            region_name=request.region_name,
            config=Config(read_timeout=_RESPONSE_WAIT_S, retries={"max_attempts": 0}),
        ).lambda_
        LOG.info("custom resource %s: %s via %s", request.logical_resource_id, request_type,
                 service_token)
        result = client.invoke(FunctionName=service_token, Payload=json.dumps(event).encode())
        if not arrived.wait(5 if "FunctionError" in result else _RESPONSE_WAIT_S):
            store.take(request_id)
            detail = result["Payload"].read().decode("utf-8", "replace")[:500]
            return ProgressEvent(
                OperationStatus.FAILED,
                resource_model={},
                message=f"custom resource {request.logical_resource_id} sent no response "
                f"({result.get('FunctionError') or 'no error'}: {detail})",
            )
        response = store.take(request_id) or {}
        if response.get("Status") != "SUCCESS":
            return ProgressEvent(
                OperationStatus.FAILED,
                resource_model={},
                message=f"custom resource {request.logical_resource_id} failed: "
                f"{response.get('Reason', 'no reason given')}",
            )
        if request_type == "Delete":
            _physical_ids.pop(key, None)
            return ProgressEvent(OperationStatus.SUCCESS, resource_model={})
        physical_id = response.get("PhysicalResourceId") or request_id
        _physical_ids[key] = physical_id
        # Fn::GetAtt on a custom resource reads the Data the function returned.
        model = {**properties, **(response.get("Data") or {}), "PhysicalResourceId": physical_id}
        return ProgressEvent(OperationStatus.SUCCESS, resource_model=model)


class LambdaCustomResourceProviderPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::CloudFormation::CustomResource"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider] | None = None

    def load(self) -> None:
        self.factory = LambdaCustomResourceProvider
