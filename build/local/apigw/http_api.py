"""An ``AWS::ApiGatewayV2::Api`` (ProtocolType HTTP) of a synthesized template, read into
``GatewayConfig`` fields: routes with their authorization (AWS_IAM, JWT), payload format,
integration timeout, stage and stage variables. What is not emulated is named in ``notes``.
"""

from __future__ import annotations

from typing import Any

from slimserve.build.errors import TemplateError
from slimserve.build.local.apigw import cloudformation as cfn
from slimserve.build.local.apigw.config import HTTP_API_MAX_TIMEOUT_S
from slimserve.build.local.apigw.routing import Authorization, Route

_V2_AUTH: dict[str, Authorization] = {"NONE": "none", "AWS_IAM": "iam", "JWT": "jwt"}


def http_api_settings(resources: cfn.Resources, api_id: str, notes: list[str]) -> dict[str, Any]:
    """GatewayConfig fields of the HTTP API ``api_id``, plus ``function_targets``: the function
    each route's integration reaches (None where the template does not say)."""
    api = resources[api_id].get("Properties") or {}
    if api.get("Target") is not None:
        raise TemplateError("quick-create HTTP APIs (Api.Target) are not emulated")
    integrations = {
        lid: props
        for lid, props in cfn.of_type(resources, "AWS::ApiGatewayV2::Integration").items()
        if cfn.belongs_to(props, "ApiId", api_id)
    }
    routes: list[Route] = []
    formats: dict[str, str] = {}
    timeouts: dict[str, float] = {}
    targets: list[str | None] = []
    custom: list[str] = []
    route_resources = cfn.of_type(resources, "AWS::ApiGatewayV2::Route")
    for logical_id, properties in sorted(route_resources.items()):
        if not cfn.belongs_to(properties, "ApiId", api_id):
            continue
        key = cfn.literal(properties.get("RouteKey"))
        if key is None:
            notes.append(f"route {logical_id} has no literal RouteKey: skipped")
            continue
        integration_ids = [
            ref for ref in cfn.references(properties.get("Target")) if ref in integrations
        ]
        if not integration_ids:
            notes.append(f"route {key} has no integration in the template: skipped")
            continue
        integration = integrations[integration_ids[0]]
        if not cfn.is_lambda_proxy(integration.get("IntegrationType"), f"route {key}", notes):
            continue
        authorization, custom_type = cfn.authorization_of(properties, _V2_AUTH)
        if custom_type is not None:
            custom.append(key)
        routes.append(Route.parse(key, authorization))
        formats[key] = cfn.literal(integration.get("PayloadFormatVersion")) or "2.0"
        timeouts[key] = cfn.integration_timeout_s(
            integration.get("TimeoutInMillis"), HTTP_API_MAX_TIMEOUT_S, key, notes
        )
        targets.append(cfn.function_behind(resources, integration.get("IntegrationUri")))
    if not routes:
        raise TemplateError("the HTTP API has no route to a Lambda proxy integration")
    if custom:
        notes.append(
            f"routes {', '.join(custom)} use a Lambda (CUSTOM) authorizer, which is not emulated: "
            "they are open locally"
        )
    payload_format = formats[routes[0].key]
    if len(set(formats.values())) > 1:
        notes.append(
            f"routes use payload formats {sorted(set(formats.values()))}: emulating {payload_format}"
        )
    timeout = cfn.longest_timeout(timeouts, "route", notes)
    stages = {
        lid: props
        for lid, props in cfn.of_type(resources, "AWS::ApiGatewayV2::Stage").items()
        if cfn.belongs_to(props, "ApiId", api_id)
    }
    stage, variables = cfn.stage_settings(stages, "$default", notes)
    throttle = next(iter(stages.values()), {}).get("DefaultRouteSettings") or {}
    if throttle.get("ThrottlingRateLimit") is not None:
        notes.append(
            f"stage throttling ({throttle.get('ThrottlingRateLimit')} requests/s, burst "
            f"{throttle.get('ThrottlingBurstLimit')}) is not emulated"
        )
    return {
        "api_type": "http",
        "payload_format": payload_format,
        "stage": stage,
        "stage_variables": variables,
        "routes": tuple(routes),
        "integration_timeout_s": timeout,
        "function_targets": targets,
    }
