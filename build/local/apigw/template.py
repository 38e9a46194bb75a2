"""What ``slimserve local`` emulates, read from the CloudFormation template the stack synthesizes.

``gateway_config_from_template(template, manifest)`` turns the template into a
``GatewayConfig``: API type and payload format, stage (and so the path prefix), routes with
their authorization (AWS_IAM, JWT, API keys), binary media types, the integration timeout and
the function's timeout, memory and environment. Only literal values are taken; anything that
exists only once deployed (a bucket name from ``Ref``, an ARN from ``Fn::GetAtt``) is left out
and named in ``GatewayConfig.notes``, as is every feature the local gateway does not copy.
Reading values is cloudformation.py; the two API types are http_api.py and rest_api.py; the
template itself comes from build/local/synth.py (``slimserve synth``'s synthesis, cached).

Template -> GatewayConfig:

| template | GatewayConfig |
|---|---|
| ``AWS::ApiGatewayV2::Api`` (ProtocolType HTTP) / ``AWS::ApiGateway::RestApi`` | ``api_type`` http / rest |
| V2 ``Integration.PayloadFormatVersion`` (REST: always 1.0) | ``payload_format`` |
| V2 ``Integration.TimeoutInMillis`` (default 30000) / REST ``Method.Integration.TimeoutInMillis`` (default 29000) | ``integration_timeout_s`` |
| V2 ``Route.RouteKey`` / REST ``Resource`` tree + ``Method.HttpMethod`` | ``routes`` |
| V2 ``Route.AuthorizationType`` AWS_IAM / JWT; REST ``Method.AuthorizationType`` AWS_IAM | ``Route.authorization`` iam / jwt |
| REST ``Method.ApiKeyRequired`` | ``Route.api_key_required`` |
| REST ``ApiKey`` (enabled, in a ``UsagePlan`` of this stage via ``UsagePlanKey``) | ``api_keys`` (local values) |
| V2 ``Stage.StageName`` / REST ``Stage.StageName``; ``StageVariables`` / ``Variables`` | ``stage`` (prefix), ``stage_variables`` |
| REST ``RestApi.BinaryMediaTypes`` | ``binary_media_types`` |
| ``AWS::Lambda::Function`` the integration reaches: ``Timeout`` (default 3), ``MemorySize`` (default 128), ``Environment.Variables`` (literals) | ``function_timeout_s``, ``memory_mb``, ``environment`` |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slimserve.build.errors import TemplateError
from slimserve.build.local.apigw.cloudformation import (
    Resources,
    literal,
    load_template,
    of_type,
)
from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.http_api import http_api_settings
from slimserve.build.local.apigw.rest_api import rest_api_settings
from slimserve.handler.constants import ENV_MODEL_S3_ALL

# Lambda's defaults when a template leaves them out.
LAMBDA_DEFAULT_TIMEOUT_S = 3
LAMBDA_DEFAULT_MEMORY_MB = 128
# Set by infra/ for package=s3; they name a bucket that exists only on AWS.
S3_MODEL_VARIABLES = ENV_MODEL_S3_ALL


# --- the function ----------------------------------------------------------------------------------


def _choose_function(resources: Resources, targets: list[str | None], manifest: Any) -> str:
    functions = of_type(resources, "AWS::Lambda::Function")
    found = {target for target in targets if target is not None}
    if len(found) == 1:
        return found.pop()
    if len(found) > 1:
        raise TemplateError(
            f"the API's integrations reach {len(found)} functions ({', '.join(sorted(found))}); "
            "slimserve local runs one"
        )
    handler = manifest.runtime.handler
    matching = [fid for fid, props in functions.items() if props.get("Handler") == handler]
    if len(matching) == 1:
        return matching[0]
    if len(functions) == 1:
        return next(iter(functions))
    raise TemplateError(
        "cannot tell which AWS::Lambda::Function the API invokes (no Ref/GetAtt in its "
        f"integrations and {len(functions)} functions in the template)"
    )


def _function_settings(
    resources: Resources, function_id: str, manifest: Any, notes: list[str]
) -> tuple[float, int, dict[str, str], list[str]]:
    properties = resources[function_id].get("Properties") or {}
    timeout_text = literal(properties.get("Timeout", LAMBDA_DEFAULT_TIMEOUT_S))
    memory_text = literal(properties.get("MemorySize", LAMBDA_DEFAULT_MEMORY_MB))
    try:
        timeout_s = float(timeout_text) if timeout_text is not None else None
        memory_mb = int(memory_text) if memory_text is not None else None
    except ValueError as exc:
        raise TemplateError(f"{function_id}: Timeout/MemorySize are not numbers: {exc}") from exc
    if timeout_s is None:
        timeout_s = float(manifest.runtime.timeout_s)
        notes.append(
            f"{function_id}.Timeout is not a literal: using the manifest's {timeout_s:g} s"
        )
    if memory_mb is None:
        memory_mb = int(manifest.runtime.memory_mb)
        notes.append(
            f"{function_id}.MemorySize is not a literal: using the manifest's {memory_mb} MiB"
        )

    environment: dict[str, str] = {}
    skipped: list[str] = []
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    s3_model = [name for name in variables if name in S3_MODEL_VARIABLES]
    for name, value in variables.items():
        if name in S3_MODEL_VARIABLES:
            skipped.append(name)
            continue
        text = literal(value)
        if text is None:
            skipped.append(name)
            notes.append(
                f"environment {name} = {json.dumps(value, separators=(',', ':'))} is resolved "
                "by CloudFormation on deploy: not set locally"
            )
        else:
            environment[name] = text
    if s3_model:
        notes.append(
            "package=s3: the function downloads its model from an S3 bucket that exists only on "
            f"AWS ({', '.join(s3_model)} not set); the local run loads the same model (same "
            "sha256) from lambda.zip's model/ folder instead"
        )

    handler = properties.get("Handler")
    if properties.get("PackageType") == "Image" or "ImageUri" in (properties.get("Code") or {}):
        notes.append(
            "package=image: the deployed function is a container image built around lambda.zip; "
            "the local run runs lambda.zip itself"
        )
    elif isinstance(handler, str) and handler != manifest.runtime.handler:
        notes.append(
            f"the template's handler {handler!r} differs from the manifest's "
            f"{manifest.runtime.handler!r}: the template is stale; running the manifest's"
        )
    runtime = properties.get("Runtime")
    expected = f"python{manifest.runtime.python}"
    if isinstance(runtime, str) and runtime != expected:
        notes.append(f"the template's runtime {runtime} differs from the manifest's {expected}")
    return timeout_s, memory_mb, environment, skipped


# --- the whole template ---------------------------------------------------------------------------


def gateway_config_from_template(
    template: Mapping[str, Any] | Path | str,
    manifest: Any,
    *,
    api_key: str | None = None,
) -> GatewayConfig:
    """The local gateway and function settings the template describes.

    ``api_key``: the value every API key of the template accepts locally (default: a random
    one per key; AWS generates its own values on deploy). Raises TemplateError.
    """
    loaded, source = load_template(template)
    resources = loaded.get("Resources")
    if not isinstance(resources, Mapping) or not resources:
        raise TemplateError("the template has no Resources")
    http_apis = [
        lid
        for lid, props in of_type(resources, "AWS::ApiGatewayV2::Api").items()
        if literal(props.get("ProtocolType")) == "HTTP"
    ]
    rest_apis = list(of_type(resources, "AWS::ApiGateway::RestApi"))
    apis = http_apis + rest_apis
    if not apis:
        raise TemplateError(
            "the template has no API Gateway HTTP API or REST API for the local gateway to copy"
        )
    if len(apis) > 1:
        raise TemplateError(
            f"the template has {len(apis)} APIs ({', '.join(apis)}); slimserve local emulates one"
        )
    notes: list[str] = []
    if http_apis:
        settings = http_api_settings(resources, http_apis[0], notes)
    else:
        settings = rest_api_settings(resources, rest_apis[0], api_key, notes)
    function_id = _choose_function(resources, settings.pop("function_targets"), manifest)
    timeout_s, memory_mb, environment, skipped = _function_settings(
        resources, function_id, manifest, notes
    )
    if settings["integration_timeout_s"] < timeout_s:
        notes.append(
            f"the function may run {timeout_s:g} s but API Gateway answers after "
            f"{settings['integration_timeout_s']:g} s"
        )
    return GatewayConfig(
        **settings,
        function_timeout_s=timeout_s,
        memory_mb=memory_mb,
        environment=environment,
        skipped_environment=tuple(skipped),
        source=source,
        notes=tuple(dict.fromkeys(notes)),
    )

