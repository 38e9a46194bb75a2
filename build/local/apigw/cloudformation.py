"""Reading a synthesized CloudFormation template: the literal values CloudFormation passes
through as they are, the logical ids ``Ref`` / ``Fn::GetAtt`` point at, resources by type, and
the pieces every API Gateway resource shares (stages, integration timeouts, the Lambda function
an integration reaches). Nothing resolved only on deploy is guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from slimserve.build.errors import TemplateError
from slimserve.build.local.apigw.routing import Authorization

Resources = Mapping[str, Mapping[str, Any]]


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


def literal(value: Any) -> str | None:
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
            texts = [literal(part) for part in parts] if isinstance(parts, list) else [None]
            if isinstance(separator, str) and all(text is not None for text in texts):
                return separator.join(texts)  # type: ignore[arg-type]
    return None


def ref(value: Any) -> str | None:
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


def references(value: Any) -> Iterator[str]:
    """Every logical id referenced anywhere inside ``value``."""
    target = ref(value)
    if target is not None:
        yield target
        return
    if isinstance(value, Mapping):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def of_type(resources: Resources, kind: str) -> dict[str, Mapping[str, Any]]:
    return {
        logical_id: resource.get("Properties") or {}
        for logical_id, resource in resources.items()
        if isinstance(resource, Mapping) and resource.get("Type") == kind
    }


def belongs_to(properties: Mapping[str, Any], key: str, api_id: str) -> bool:
    return ref(properties.get(key)) == api_id


def integration_timeout_s(raw: Any, default: float, where: str, notes: list[str]) -> float:
    """An integration's ``TimeoutInMillis`` in seconds (``default`` when absent or unreadable)."""
    if raw is None:
        return default
    text = literal(raw)
    try:
        return int(text) / 1000 if text is not None else default
    except ValueError:
        notes.append(f"{where}: TimeoutInMillis {raw!r} is not a number; using {default:g} s")
        return default


def stage_settings(
    stages: dict[str, Mapping[str, Any]], preferred: str, notes: list[str]
) -> tuple[str, dict[str, str]]:
    """(name, variables) of the stage to emulate: ``preferred`` when the API has it, else the
    first by name. Raises TemplateError when the API has no stage."""
    named = {}
    for logical_id, properties in stages.items():
        name = literal(properties.get("StageName"))
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
        text = literal(value)
        if text is None:
            notes.append(f"stage variable {key} is resolved on deploy: not set locally")
        else:
            variables[key] = text
    return name, variables


def function_behind(resources: Resources, integration_target: Any) -> str | None:
    """Follow an integration's URI (alias, version or function) to the Lambda function."""
    seen: set[str] = set()
    pending = list(references(integration_target))
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
            pending.extend(references((resource.get("Properties") or {}).get("FunctionName")))
    return None


def is_lambda_proxy(integration_type: Any, where: str, notes: list[str]) -> bool:
    """Only Lambda proxy integrations (AWS_PROXY) are emulated; others are noted and skipped."""
    if integration_type == "AWS_PROXY":
        return True
    notes.append(f"{where}: integration type {integration_type} is not emulated: skipped")
    return False


def authorization_of(
    properties: Mapping[str, Any], emulated: Mapping[str, Authorization]
) -> tuple[Authorization, str | None]:
    """(how the local gateway checks callers of a route or method, the AuthorizationType it
    cannot emulate, which leaves the route open locally, or None)."""
    auth_type = literal(properties.get("AuthorizationType")) or "NONE"
    authorization = emulated.get(auth_type)
    return (authorization, None) if authorization is not None else ("none", auth_type)


def longest_timeout(timeouts: Mapping[str, float], per: str, notes: list[str]) -> float:
    """API Gateway's integration timeout, one for the whole local gateway: the longest."""
    timeout = max(timeouts.values())
    if len(set(timeouts.values())) > 1:
        notes.append(f"integration timeouts differ by {per}: emulating the longest, {timeout:g} s")
    return timeout
