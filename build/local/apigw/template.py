"""What ``slimserve local`` emulates, read from the CloudFormation template the stack synthesizes.

``gateway_config_from_template(template, manifest)`` turns the template into a
``GatewayConfig``: API type and payload format, stage (and so the path prefix), routes with
their authorization (AWS_IAM, JWT, API keys), binary media types, the integration timeout and
the function's timeout, memory and environment. Only literal values are taken; anything that
exists only once deployed (a bucket name from ``Ref``, an ARN from ``Fn::GetAtt``) is left out
and named in ``GatewayConfig.notes``, as is every feature the local gateway does not copy.

``synthesized_template(manifest_path, options)`` runs ``slimserve synth``'s synthesis (offline,
no credentials) into ``.cache/local-synth/<key>/``, keyed by the manifest's sha256, the
options, the CDK app's sources and the CDK library version; a cached template is reused.

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

import hashlib
import json
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from slimserve.build.errors import TemplateError
from slimserve.build.local.apigw.gateway import (
    HTTP_API_MAX_TIMEOUT_S,
    REST_API_DEFAULT_TIMEOUT_S,
    Authorization,
    GatewayConfig,
    Route,
)
from slimserve.build.paths import INFRA_PACKAGE, PACKAGE_ROOT
from slimserve.handler.constants import ENV_MODEL_S3_ALL

__all__ = [
    "S3_MODEL_VARIABLES",
    "TemplateError",
    "gateway_config_from_template",
    "load_template",
    "synth_cache_key",
    "synthesized_template",
]

# Lambda's defaults when a template leaves them out.
LAMBDA_DEFAULT_TIMEOUT_S = 3
LAMBDA_DEFAULT_MEMORY_MB = 128
# Set by infra/ for package=s3; they name a bucket that exists only on AWS.
S3_MODEL_VARIABLES = ENV_MODEL_S3_ALL
SYNTH_CACHE_FOLDER = "local-synth"
_PROJECT_ROOT = PACKAGE_ROOT
_INFRA = INFRA_PACKAGE

Resources = Mapping[str, Mapping[str, Any]]


# --- reading CloudFormation values ---------------------------------------------------------------


def load_template(template: Mapping[str, Any] | Path | str) -> tuple[dict[str, Any], str]:
    """(template, where it came from) from a dict or a JSON file."""
    if isinstance(template, Mapping):
        return dict(template), "template"
    path = Path(template)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"cannot read the template {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{path} is not a JSON CloudFormation template: {exc}") from exc
    if not isinstance(loaded, dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no JSON object)")
    return loaded, f"template {path}"


def _literal(value: Any) -> str | None:
    """A value CloudFormation would pass through as is, as text; None for anything resolved
    only at deploy time (Ref, Fn::GetAtt, imports, pseudo parameters)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, Mapping) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::Sub" and isinstance(argument, str) and "${" not in argument:
            return argument
        if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
            separator, parts = argument
            texts = [_literal(part) for part in parts] if isinstance(parts, list) else [None]
            if isinstance(separator, str) and all(text is not None for text in texts):
                return separator.join(texts)  # type: ignore[arg-type]
    return None


def _ref(value: Any) -> str | None:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` points at."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and isinstance(argument, str):
            return argument
        if function == "Fn::GetAtt":
            if isinstance(argument, list) and argument:
                return str(argument[0])
            if isinstance(argument, str):
                return argument.split(".", 1)[0]
    return None


def _references(value: Any) -> Iterator[str]:
    """Every logical id referenced anywhere inside ``value``."""
    ref = _ref(value)
    if ref is not None:
        yield ref
        return
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _of_type(resources: Resources, kind: str) -> dict[str, Mapping[str, Any]]:
    return {
        logical_id: resource.get("Properties") or {}
        for logical_id, resource in resources.items()
        if isinstance(resource, Mapping) and resource.get("Type") == kind
    }


def _belongs_to(properties: Mapping[str, Any], key: str, api_id: str) -> bool:
    return _ref(properties.get(key)) == api_id


def _timeout_s(raw: Any, default: float, where: str, notes: list[str]) -> float:
    if raw is None:
        return default
    text = _literal(raw)
    try:
        return int(text) / 1000 if text is not None else default
    except ValueError:
        notes.append(f"{where}: TimeoutInMillis {raw!r} is not a number; using {default:g} s")
        return default


# --- the function ----------------------------------------------------------------------------------


def _function_behind(resources: Resources, integration_target: Any) -> str | None:
    """Follow an integration's URI (alias, version or function) to the Lambda function."""
    seen: set[str] = set()
    pending = list(_references(integration_target))
    while pending:
        logical_id = pending.pop(0)
        if logical_id in seen or logical_id not in resources:
            continue
        seen.add(logical_id)
        resource = resources[logical_id]
        kind = resource.get("Type")
        if kind == "AWS::Lambda::Function":
            return logical_id
        if kind in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            pending.extend(_references((resource.get("Properties") or {}).get("FunctionName")))
    return None


def _choose_function(resources: Resources, targets: list[str | None], manifest: Any) -> str:
    functions = _of_type(resources, "AWS::Lambda::Function")
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
    timeout_text = _literal(properties.get("Timeout", LAMBDA_DEFAULT_TIMEOUT_S))
    memory_text = _literal(properties.get("MemorySize", LAMBDA_DEFAULT_MEMORY_MB))
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
            f"{function_id}.MemorySize is not a literal: using the manifest's {memory_mb} MB"
        )

    environment: dict[str, str] = {}
    skipped: list[str] = []
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    s3_model = [name for name in variables if name in S3_MODEL_VARIABLES]
    for name, value in variables.items():
        if name in S3_MODEL_VARIABLES:
            skipped.append(name)
            continue
        text = _literal(value)
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


# --- HTTP API ------------------------------------------------------------------------------------

_V2_AUTH: dict[str, Authorization] = {"NONE": "none", "AWS_IAM": "iam", "JWT": "jwt"}


def _stage(
    stages: dict[str, Mapping[str, Any]], preferred: str, notes: list[str]
) -> tuple[str, dict[str, str]]:
    named = {}
    for logical_id, properties in stages.items():
        name = _literal(properties.get("StageName"))
        if name is None:
            notes.append(f"stage {logical_id} has no literal StageName: skipped")
            continue
        named[name] = properties
    if not named:
        raise TemplateError("the API has no stage, so it serves nothing")
    name = preferred if preferred in named else min(named)
    if len(named) > 1:
        notes.append(f"the API has stages {', '.join(sorted(named))}: emulating {name}")
    properties = named[name]
    raw = properties.get("StageVariables") or properties.get("Variables") or {}
    variables = {}
    for key, value in raw.items():
        text = _literal(value)
        if text is None:
            notes.append(f"stage variable {key} is resolved on deploy: not set locally")
        else:
            variables[key] = text
    return name, variables


def _http_api(resources: Resources, api_id: str, manifest: Any, notes: list[str]) -> dict[str, Any]:
    api = resources[api_id].get("Properties") or {}
    if api.get("Target") is not None:
        raise TemplateError("quick-create HTTP APIs (Api.Target) are not emulated")
    integrations = {
        lid: props
        for lid, props in _of_type(resources, "AWS::ApiGatewayV2::Integration").items()
        if _belongs_to(props, "ApiId", api_id)
    }
    routes: list[Route] = []
    formats: dict[str, str] = {}
    timeouts: dict[str, float] = {}
    targets: list[str | None] = []
    custom: list[str] = []
    for logical_id, properties in sorted(_of_type(resources, "AWS::ApiGatewayV2::Route").items()):
        if not _belongs_to(properties, "ApiId", api_id):
            continue
        key = _literal(properties.get("RouteKey"))
        if key is None:
            notes.append(f"route {logical_id} has no literal RouteKey: skipped")
            continue
        integration_ids = [
            ref for ref in _references(properties.get("Target")) if ref in integrations
        ]
        if not integration_ids:
            notes.append(f"route {key} has no integration in the template: skipped")
            continue
        integration = integrations[integration_ids[0]]
        kind = integration.get("IntegrationType")
        if kind != "AWS_PROXY":
            notes.append(f"route {key}: integration type {kind} is not emulated: skipped")
            continue
        auth_type = _literal(properties.get("AuthorizationType")) or "NONE"
        authorization = _V2_AUTH.get(auth_type)
        if authorization is None:
            custom.append(key)
            authorization = "none"
        routes.append(Route.parse(key, authorization))
        formats[key] = _literal(integration.get("PayloadFormatVersion")) or "2.0"
        timeouts[key] = _timeout_s(
            integration.get("TimeoutInMillis"), HTTP_API_MAX_TIMEOUT_S, key, notes
        )
        targets.append(_function_behind(resources, integration.get("IntegrationUri")))
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
    timeout = max(timeouts.values())
    if len(set(timeouts.values())) > 1:
        notes.append(f"integration timeouts differ by route: emulating the longest, {timeout:g} s")
    stages = {
        lid: props
        for lid, props in _of_type(resources, "AWS::ApiGatewayV2::Stage").items()
        if _belongs_to(props, "ApiId", api_id)
    }
    stage, variables = _stage(stages, "$default", notes)
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
        "function_id": _choose_function(resources, targets, manifest),
    }


# --- REST API ------------------------------------------------------------------------------------

_REST_AUTH: dict[str, Authorization] = {"NONE": "none", "AWS_IAM": "iam"}


def _resource_paths(resources: Resources, api_id: str) -> dict[str, str]:
    """Logical id -> path of every AWS::ApiGateway::Resource of the API."""
    parts = {
        lid: props
        for lid, props in _of_type(resources, "AWS::ApiGateway::Resource").items()
        if _belongs_to(props, "RestApiId", api_id)
    }
    paths: dict[str, str] = {}

    def path_of(logical_id: str, depth: int = 0) -> str | None:
        if logical_id in paths:
            return paths[logical_id]
        properties = parts.get(logical_id)
        if properties is None or depth > 64:
            return None
        parent = properties.get("ParentId")
        part = _literal(properties.get("PathPart"))
        if part is None:
            return None
        if _is_root(parent, api_id):
            base = ""
        else:
            parent_id = _ref(parent)
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
    resources: Resources,
    api_id: str,
    stage_ids: set[str],
    stage: str,
    api_key: str | None,
    notes: list[str],
) -> dict[str, str]:
    plans = {
        lid
        for lid, props in _of_type(resources, "AWS::ApiGateway::UsagePlan").items()
        if any(
            _ref(entry.get("ApiId")) == api_id
            and (_ref(entry.get("Stage")) in stage_ids or _literal(entry.get("Stage")) == stage)
            for entry in props.get("ApiStages") or []
            if isinstance(entry, Mapping)
        )
    }
    in_plan = {
        _ref(props.get("KeyId"))
        for props in _of_type(resources, "AWS::ApiGateway::UsagePlanKey").values()
        if _ref(props.get("UsagePlanId")) in plans
    }
    keys: dict[str, str] = {}
    for logical_id, properties in sorted(_of_type(resources, "AWS::ApiGateway::ApiKey").items()):
        name = _literal(properties.get("Name")) or logical_id
        if logical_id not in in_plan:
            notes.append(f"API key {name} is in no usage plan of stage {stage}: AWS refuses it")
            continue
        if _literal(properties.get("Enabled")) != "true":
            notes.append(f"API key {name} is not enabled: AWS refuses it")
            continue
        value = _literal(properties.get("Value")) or api_key or secrets.token_urlsafe(30)
        keys[name] = value
    return keys


def _rest_api(
    resources: Resources, api_id: str, manifest: Any, api_key: str | None, notes: list[str]
) -> dict[str, Any]:
    api = resources[api_id].get("Properties") or {}
    if api.get("Body") is not None or api.get("BodyS3Location") is not None:
        notes.append("the REST API is (also) defined by an OpenAPI body, which is not read")
    if (_literal(api.get("ApiKeySourceType")) or "HEADER") != "HEADER":
        notes.append(
            "API keys come from a Lambda authorizer (ApiKeySourceType AUTHORIZER): not emulated"
        )
    binary_media_types = tuple(
        text.replace("~1", "/") for text in map(_literal, api.get("BinaryMediaTypes") or []) if text
    )
    paths = _resource_paths(resources, api_id)
    routes: list[Route] = []
    timeouts: dict[str, float] = {}
    targets: list[str | None] = []
    custom: list[str] = []
    validated: list[str] = []
    for logical_id, properties in sorted(_of_type(resources, "AWS::ApiGateway::Method").items()):
        if not _belongs_to(properties, "RestApiId", api_id):
            continue
        resource_ref = properties.get("ResourceId")
        path = "/" if _is_root(resource_ref, api_id) else paths.get(_ref(resource_ref) or "")
        method = _literal(properties.get("HttpMethod"))
        if path is None or method is None:
            notes.append(f"method {logical_id}: resource path or HTTP method not literal: skipped")
            continue
        key = f"{method.upper()} {path}"
        integration = properties.get("Integration") or {}
        kind = integration.get("Type")
        if kind != "AWS_PROXY":
            notes.append(f"method {key}: integration type {kind} is not emulated: skipped")
            continue
        auth_type = _literal(properties.get("AuthorizationType")) or "NONE"
        authorization = _REST_AUTH.get(auth_type)
        if authorization is None:
            custom.append(f"{key} ({auth_type})")
            authorization = "none"
        api_key_required = _literal(properties.get("ApiKeyRequired")) == "true"
        routes.append(Route.parse(key, authorization, api_key_required))
        timeouts[key] = _timeout_s(
            integration.get("TimeoutInMillis"), REST_API_DEFAULT_TIMEOUT_S, key, notes
        )
        targets.append(_function_behind(resources, integration.get("Uri")))
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
    timeout = max(timeouts.values())
    if len(set(timeouts.values())) > 1:
        notes.append(f"integration timeouts differ by method: emulating the longest, {timeout:g} s")

    stages = {
        lid: props
        for lid, props in _of_type(resources, "AWS::ApiGateway::Stage").items()
        if _belongs_to(props, "RestApiId", api_id)
    }
    for lid, props in _of_type(resources, "AWS::ApiGateway::Deployment").items():
        if _belongs_to(props, "RestApiId", api_id) and props.get("StageName") is not None:
            stages[lid] = {"StageName": props["StageName"]}
    stage, variables = _stage(stages, "prod", notes)
    stage_ids = {lid for lid, props in stages.items() if _literal(props.get("StageName")) == stage}
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
    if _of_type(resources, "AWS::WAFv2::WebACLAssociation"):
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
        "function_id": _choose_function(resources, targets, manifest),
    }


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
        for lid, props in _of_type(resources, "AWS::ApiGatewayV2::Api").items()
        if _literal(props.get("ProtocolType")) == "HTTP"
    ]
    rest_apis = list(_of_type(resources, "AWS::ApiGateway::RestApi"))
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
        settings = _http_api(resources, http_apis[0], manifest, notes)
    else:
        settings = _rest_api(resources, rest_apis[0], manifest, api_key, notes)
    function_id = settings.pop("function_id")
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


# --- synthesizing, cached -------------------------------------------------------------------------


def _infra_digest() -> str:
    """The CDK app's own sources: a change there must not reuse an old template."""
    digest = hashlib.sha256()
    for path in sorted(_INFRA.glob("*")):
        if path.is_file() and path.suffix in (".py", ".json"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cdk_versions() -> str:
    try:
        library = metadata.version("aws-cdk-lib")
    except metadata.PackageNotFoundError:
        library = "?"
    try:
        lock = json.loads((_PROJECT_ROOT / "package-lock.json").read_text(encoding="utf-8"))
        cli = lock["packages"]["node_modules/aws-cdk"]["version"]
    except (OSError, KeyError, ValueError):
        cli = "?"
    return f"aws-cdk-lib {library}, aws-cdk {cli}"


def synth_cache_key(manifest_path: Path, options: Any) -> str:
    """(manifest sha256, options, CDK app sources, CDK versions) -> a short hex key."""
    from slimserve.build.deploy.cdk import options_context
    from slimserve.infra.options import StackOptions, parse_options

    stack_options = options if isinstance(options, StackOptions) else parse_options(options)
    parts = {
        "manifest": hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest(),
        "options": options_context(stack_options),
        "infra": _infra_digest(),
        "cdk": _cdk_versions(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


_validation_lock = threading.Lock()
_validation_users = 0
_validation_set_by_us = False


@contextmanager
def _without_cloudformation_validation() -> Iterator[None]:
    """CDK_VALIDATION=false for the CLI's environment while synthesizing. CDK's built-in
    template validation only checks, it never changes the template, and it is most of the synth
    time; cdk-nag still runs. An explicit CDK_VALIDATION wins. Safe for parallel synths."""
    global _validation_users, _validation_set_by_us
    with _validation_lock:
        if _validation_users == 0:
            _validation_set_by_us = "CDK_VALIDATION" not in os.environ
            if _validation_set_by_us:
                os.environ["CDK_VALIDATION"] = "false"
        _validation_users += 1
    try:
        yield
    finally:
        with _validation_lock:
            _validation_users -= 1
            if _validation_users == 0 and _validation_set_by_us:
                os.environ.pop("CDK_VALIDATION", None)


def synthesized_template(
    manifest_path: Path, options: Any, cache_dir: Path, *, refresh: bool = False
) -> tuple[Path, bool]:
    """(template path, True when it came from the cache). Synthesizes with the same app,
    manifest and options as ``slimserve synth`` (offline, no credentials) when not cached.
    Raises slimserve.build.deploy.cdk.CdkError, slimserve.infra.options.OptionsError, slimserve.handler.manifest.ManifestError."""
    from slimserve.build.deploy import cdk
    from slimserve.infra.options import StackOptions, parse_options

    manifest_path = Path(manifest_path)
    stack_options = options if isinstance(options, StackOptions) else parse_options(options)
    key = synth_cache_key(manifest_path, stack_options)
    folder = Path(cache_dir) / SYNTH_CACHE_FOLDER / key
    cached = sorted(folder.glob("*.template.json")) if folder.is_dir() else []
    if cached and not refresh:
        return cached[0], True
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="synth-", dir=folder.parent))
    try:
        with _without_cloudformation_validation():
            produced = cdk.synth(manifest_path, scratch / "cdk.out", stack_options)
        folder.mkdir(exist_ok=True)
        target = folder / produced.name
        partial = folder / f".{produced.name}.{os.getpid()}"
        shutil.copyfile(produced, partial)
        os.replace(partial, target)  # atomic: a parallel run never reads half a template
        (folder / "inputs.json").write_text(
            json.dumps(
                {
                    "manifest": str(manifest_path.resolve()),
                    "options": json.loads(cdk.options_context(stack_options)),
                    "cdk": _cdk_versions(),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        return target, False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the cloud assembly holds a copy of the zip
