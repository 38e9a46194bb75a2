"""An ``AWS::ApiGateway::RestApi`` of a synthesized template, read into ``GatewayConfig``
fields: the resource tree and its methods (AWS_IAM, API keys), binary media types, integration
timeouts, the stage, and the API keys of the stage's usage plans. What is not emulated is named
in ``notes``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from slimserve.build.errors import TemplateError
from slimserve.build.local.apigw import cloudformation as cfn
from slimserve.build.local.apigw.config import REST_API_DEFAULT_TIMEOUT_S
from slimserve.build.local.apigw.routing import Authorization, Route

_REST_AUTH: dict[str, Authorization] = {"NONE": "none", "AWS_IAM": "iam"}


def _resource_paths(resources: cfn.Resources, api_id: str) -> dict[str, str]:
    """Logical id -> path of every AWS::ApiGateway::Resource of the API."""
    parts = {
        lid: props
        for lid, props in cfn.of_type(resources, "AWS::ApiGateway::Resource").items()
        if cfn.belongs_to(props, "RestApiId", api_id)
    }
    paths: dict[str, str] = {}

    def path_of(logical_id: str, depth: int = 0) -> str | None:
        if logical_id in paths:
            return paths[logical_id]
        properties = parts.get(logical_id)
        if properties is None or depth > 64:
            return None
        parent = properties.get("ParentId")
        part = cfn.literal(properties.get("PathPart"))
        if part is None:
            return None
        if _is_root(parent, api_id):
            base = ""
        else:
            parent_id = cfn.ref(parent)
            parent_path = path_of(parent_id, depth + 1) if parent_id else None
            if parent_path is None:
                return None
            base = parent_path
        paths[logical_id] = f"{base}/{part}"
        return paths[logical_id]

    for logical_id in parts:
        path_of(logical_id)
    return paths


def _is_root(value: Any, api_id: str) -> bool:
    """``{"Fn::GetAtt": [api, "RootResourceId"]}`` (or ``"api.RootResourceId"``)."""
    if not isinstance(value, Mapping) or set(value) != {"Fn::GetAtt"}:
        return False
    argument = value["Fn::GetAtt"]
    if isinstance(argument, str):
        argument = argument.split(".", 1)
    return isinstance(argument, list) and argument == [api_id, "RootResourceId"]


def _rest_api_keys(
    resources: cfn.Resources,
    api_id: str,
    stage_ids: set[str],
    stage: str,
    api_key: str | None,
    notes: list[str],
) -> dict[str, str]:
    plans = {
        lid
        for lid, props in cfn.of_type(resources, "AWS::ApiGateway::UsagePlan").items()
        if any(
            cfn.ref(entry.get("ApiId")) == api_id
            and (
                cfn.ref(entry.get("Stage")) in stage_ids or cfn.literal(entry.get("Stage")) == stage
            )
            for entry in props.get("ApiStages") or []
            if isinstance(entry, Mapping)
        )
    }
    in_plan = {
        cfn.ref(props.get("KeyId"))
        for props in cfn.of_type(resources, "AWS::ApiGateway::UsagePlanKey").values()
        if cfn.ref(props.get("UsagePlanId")) in plans
    }
    keys: dict[str, str] = {}
    for logical_id, properties in sorted(cfn.of_type(resources, "AWS::ApiGateway::ApiKey").items()):
        name = cfn.literal(properties.get("Name")) or logical_id
        if logical_id not in in_plan:
            notes.append(f"API key {name} is in no usage plan of stage {stage}: AWS refuses it")
            continue
        if cfn.literal(properties.get("Enabled")) != "true":
            notes.append(f"API key {name} is not enabled: AWS refuses it")
            continue
        value = cfn.literal(properties.get("Value")) or api_key or secrets.token_urlsafe(30)
        keys[name] = value
    return keys


def rest_api_settings(
    resources: cfn.Resources, api_id: str, api_key: str | None, notes: list[str]
) -> dict[str, Any]:
    """GatewayConfig fields of the REST API ``api_id``, plus ``function_targets``: the function
    each method's integration reaches (None where the template does not say). ``api_key``: the
    local value of every API key without a literal one (default: random per key)."""
    api = resources[api_id].get("Properties") or {}
    if api.get("Body") is not None or api.get("BodyS3Location") is not None:
        notes.append("the REST API is (also) defined by an OpenAPI body, which is not read")
    if (cfn.literal(api.get("ApiKeySourceType")) or "HEADER") != "HEADER":
        notes.append(
            "API keys come from a Lambda authorizer (ApiKeySourceType AUTHORIZER): not emulated"
        )
    binary_media_types = tuple(
        text.replace("~1", "/")
        for text in map(cfn.literal, api.get("BinaryMediaTypes") or [])
        if text
    )
    paths = _resource_paths(resources, api_id)
    routes: list[Route] = []
    timeouts: dict[str, float] = {}
    targets: list[str | None] = []
    custom: list[str] = []
    validated: list[str] = []
    for logical_id, properties in sorted(cfn.of_type(resources, "AWS::ApiGateway::Method").items()):
        if not cfn.belongs_to(properties, "RestApiId", api_id):
            continue
        resource_ref = properties.get("ResourceId")
        path = "/" if _is_root(resource_ref, api_id) else paths.get(cfn.ref(resource_ref) or "")
        method = cfn.literal(properties.get("HttpMethod"))
        if path is None or method is None:
            notes.append(f"method {logical_id}: resource path or HTTP method not literal: skipped")
            continue
        key = f"{method.upper()} {path}"
        integration = properties.get("Integration") or {}
        if not cfn.is_lambda_proxy(integration.get("Type"), f"method {key}", notes):
            continue
        authorization, custom_type = cfn.authorization_of(properties, _REST_AUTH)
        if custom_type is not None:
            custom.append(f"{key} ({custom_type})")
        api_key_required = cfn.literal(properties.get("ApiKeyRequired")) == "true"
        routes.append(Route.parse(key, authorization, api_key_required))
        timeouts[key] = cfn.integration_timeout_s(
            integration.get("TimeoutInMillis"), REST_API_DEFAULT_TIMEOUT_S, key, notes
        )
        targets.append(cfn.function_behind(resources, integration.get("Uri")))
        if properties.get("RequestValidatorId") is not None:
            validated.append(key)
    if not routes:
        raise TemplateError("the REST API has no method with a Lambda proxy integration")
    if custom:
        notes.append(
            f"methods {', '.join(custom)} use authorizers that are not emulated: open locally"
        )
    if validated:
        notes.append(
            f"request validation ({len(validated)} methods with a request validator) is not "
            'emulated: requests the deployed API refuses with 400 (e.g. {"message": "Invalid '
            'request body"}) reach the function locally'
        )
    timeout = cfn.longest_timeout(timeouts, "method", notes)

    stages = {
        lid: props
        for lid, props in cfn.of_type(resources, "AWS::ApiGateway::Stage").items()
        if cfn.belongs_to(props, "RestApiId", api_id)
    }
    for lid, props in cfn.of_type(resources, "AWS::ApiGateway::Deployment").items():
        if cfn.belongs_to(props, "RestApiId", api_id) and props.get("StageName") is not None:
            stages[lid] = {"StageName": props["StageName"]}
    stage, variables = cfn.stage_settings(stages, "prod", notes)
    stage_ids = {
        lid for lid, props in stages.items() if cfn.literal(props.get("StageName")) == stage
    }
    for props in stages.values():
        for setting in props.get("MethodSettings") or []:
            if isinstance(setting, Mapping) and setting.get("ThrottlingRateLimit") is not None:
                notes.append(
                    f"stage throttling ({setting['ThrottlingRateLimit']} requests/s, burst "
                    f"{setting.get('ThrottlingBurstLimit')}) is not emulated"
                )
                break
    api_keys: dict[str, str] = {}
    if any(route.api_key_required for route in routes):
        api_keys = _rest_api_keys(resources, api_id, stage_ids, stage, api_key, notes)
        if not api_keys:
            notes.append("no usable API key for this stage: every keyed request gets 403 Forbidden")
        notes.append("usage-plan throttling and quotas are not emulated")
    if cfn.of_type(resources, "AWS::WAFv2::WebACLAssociation"):
        notes.append("the AWS WAF web ACL in front of the stage is not emulated")
    return {
        "api_type": "rest",
        "payload_format": "1.0",
        "stage": stage,
        "stage_variables": variables,
        "routes": tuple(routes),
        "api_keys": api_keys,
        "binary_media_types": binary_media_types,
        "integration_timeout_s": timeout,
        "function_targets": targets,
    }
