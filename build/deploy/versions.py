"""``slimserve versions | rollback``: the model versions a deployed stack has, read from AWS.

Each deploy of a new build publishes a Lambda version whose description records the model,
its sha256, its gate result and its build time (slimserve.infra.version_record); the stack's
``live`` alias points at one of them (two during a canary). Old versions are retained, so
``rollback`` can point ``live`` back at one:

- through CodeDeploy when the stack has its deployment group (every stack slimserve makes): a
  deployment from the current version to the target one, with the stack's hooks (the canary
  replay) and alarms, exactly like a deploy's traffic shift;
- directly (``lambda:UpdateAlias``) when the deployment group does not really exist: on the
  emulator, CloudFormation records CodeDeploy resources as placeholders with the physical id
  ``unknown`` (LocalStack community has no CodeDeploy).

A version whose gate failed or is unknown, or whose model artefact is gone (the S3 object
version a ``package=s3`` function is pinned to), is refused. A rollback lasts until the next
deploy of a new build.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slimserve.build.errors import AwsError, RollbackRefused, StackNotDeployed
from slimserve.handler.constants import (
    ENV_MODEL_S3_BUCKET,
    ENV_MODEL_S3_KEY,
    ENV_MODEL_S3_VERSION,
)
from slimserve.infra.version_record import VersionRecord, parse_description

LIVE_ALIAS = "live"  # slimserve.infra.function.LIVE_ALIAS (that module loads the CDK)
FUNCTION_ALIAS_OUTPUT = "FunctionAlias"
# What CloudFormation records for a resource type the emulator only pretends to create.
PLACEHOLDER_PHYSICAL_ID = "unknown"
DEPLOYMENT_GROUP_TYPE = "AWS::CodeDeploy::DeploymentGroup"
APPLICATION_TYPE = "AWS::CodeDeploy::Application"


@dataclass(frozen=True)
class DeployedVersion:
    number: str  # the Lambda version, "1", "2", ...
    record: VersionRecord | None  # None: not described by slimserve
    published: datetime | None
    model_object: str | None  # s3://bucket/key?versionId=... for package=s3, else None
    live_weight: float  # share of live's traffic: 1.0, 0.0, or a canary's split

    def as_json(self) -> dict[str, Any]:
        record = self.record
        return {
            "lambda_version": self.number,
            "model": record.model if record else None,
            "model_version": record.version if record else None,
            "sha256": record.sha256 if record else None,
            "gate": (
                None
                if record is None or record.gate_metric is None
                else {"metric": record.gate_metric, "value": record.gate_value, "passed": record.gate_passed}
            ),
            "built_at": record.built_at.isoformat() if record and record.built_at else None,
            "published_at": self.published.isoformat() if self.published else None,
            "model_object": self.model_object,
            "live_weight": self.live_weight,
        }


@dataclass(frozen=True)
class StackVersions:
    stack_name: str
    function_name: str
    live_version: str  # the version live points at (the old one while a canary runs)
    versions: list[DeployedVersion]  # newest first

    @property
    def canary_running(self) -> bool:
        """Live splits its traffic: part of it goes to a version other than ``live_version``."""
        return any(v.live_weight > 0 for v in self.versions if v.number != self.live_version)

    def find(self, number: str) -> DeployedVersion:
        for version in self.versions:
            if version.number == number:
                return version
        known = ", ".join(v.number for v in self.versions) or "none"
        raise RollbackRefused(
            f"{self.stack_name} has no Lambda version {number!r} (published versions: {known})"
        )


Clients = Callable[[str], Any]  # service name -> boto3 client


def boto3_clients(service: str) -> Any:
    import boto3

    return boto3.client(service)


def read_versions(stack_name: str, clients: Clients = boto3_clients) -> StackVersions:
    """Every published version of the stack's function, as AWS reports them."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        function_name = _function_name(stack_name, clients("cloudformation"))
        lambda_ = clients("lambda")
        alias = lambda_.get_alias(FunctionName=function_name, Name=LIVE_ALIAS)
        pages = lambda_.get_paginator("list_versions_by_function").paginate(FunctionName=function_name)
        configurations = [c for page in pages for c in page["Versions"] if c["Version"] != "$LATEST"]
    except ClientError as exc:
        raise AwsError(f"reading {stack_name}'s versions failed: {_message(exc)}") from None
    except BotoCoreError as exc:
        raise AwsError(f"reading {stack_name}'s versions failed: {exc}") from None
    weights = {alias["FunctionVersion"]: 1.0}
    for number, weight in (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {}).items():
        weights[number] = float(weight)
        weights[alias["FunctionVersion"]] -= float(weight)
    versions = [
        DeployedVersion(
            number=c["Version"],
            record=parse_description(c.get("Description")),
            published=_timestamp(c.get("LastModified")),
            model_object=_model_object(c),
            live_weight=round(weights.get(c["Version"], 0.0), 4),
        )
        for c in sorted(configurations, key=lambda c: int(c["Version"]), reverse=True)
    ]
    return StackVersions(stack_name, function_name, alias["FunctionVersion"], versions)


def _function_name(stack_name: str, cloudformation: Any) -> str:
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in _message(exc):
            raise StackNotDeployed(
                f"stack {stack_name} is not deployed in this account and region "
                "(deploy it with `slimserve deploy`, or give the target and options it was deployed with)"
            ) from None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    alias_arn = outputs.get(FUNCTION_ALIAS_OUTPUT)
    if not alias_arn:
        raise StackNotDeployed(f"stack {stack_name} has no {FUNCTION_ALIAS_OUTPUT} output: not a slimserve stack")
    # arn:aws:lambda:<region>:<account>:function:<name>:live
    return alias_arn.split(":")[6]


def _model_object(configuration: dict[str, Any]) -> str | None:
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    if ENV_MODEL_S3_BUCKET not in variables:
        return None
    where = f"s3://{variables[ENV_MODEL_S3_BUCKET]}/{variables.get(ENV_MODEL_S3_KEY, '')}"
    version_id = variables.get(ENV_MODEL_S3_VERSION)
    return f"{where}?versionId={version_id}" if version_id else where


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None


def _message(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Message") or error.get("Code") or exc)


# --- rollback -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackResult:
    from_version: str
    to_version: str
    via: str  # "codedeploy" or "alias"
    deployment_id: str | None = None
    note: str | None = None


def choose_target(stack: StackVersions, to: str | None) -> DeployedVersion:
    """``--to``, else the version live points at when a canary splits its traffic (the new
    version stops getting any), else the newest version older than the live one."""
    if to is not None:
        return stack.find(to)
    if stack.canary_running:
        return stack.find(stack.live_version)
    older = [v for v in stack.versions if int(v.number) < int(stack.live_version)]
    if not older:
        raise RollbackRefused(
            f"{stack.stack_name}: live points at version {stack.live_version}, the oldest published "
            "one: there is nothing to roll back to"
        )
    return older[0]


def check_rollback_target(stack: StackVersions, target: DeployedVersion, clients: Clients) -> None:
    """Refuse a target whose gate failed or is unknown, or whose model artefact is gone."""
    where = f"{stack.stack_name} version {target.number}"
    if target.number == stack.live_version and not stack.canary_running:
        raise RollbackRefused(f"{where} is what live already points at")
    record = target.record
    if record is None:
        raise RollbackRefused(
            f"{where} carries no slimserve model record in its description (published by "
            "something else, or before versions were described): refusing to serve it unchecked"
        )
    if record.gate_metric is None:
        raise RollbackRefused(f"{where} (model {record.model} {record.version}) has no accuracy gate result")
    if not record.gate_passed:
        raise RollbackRefused(
            f"{where} (model {record.model} {record.version}) failed its accuracy gate "
            f"({record.gate_metric} {record.gate_value:g}): refusing to serve it"
        )
    if target.model_object is not None:
        _require_model_object(where, target.model_object, clients("s3"))


def _require_model_object(where: str, model_object: str, s3: Any) -> None:
    from botocore.exceptions import ClientError

    location, _, version_id = model_object.removeprefix("s3://").partition("?versionId=")
    bucket, _, key = location.partition("/")
    try:
        s3.head_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
    except ClientError as exc:
        raise RollbackRefused(
            f"{where}'s model artefact {model_object} is gone ({_message(exc)}): its function "
            "would fail at init; refusing to roll back to it"
        ) from None


def rollback(stack_name: str, to: str | None, clients: Clients = boto3_clients) -> RollbackResult:
    stack = read_versions(stack_name, clients)
    target = choose_target(stack, to)
    check_rollback_target(stack, target, clients)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        group = _deployment_group(stack_name, clients("cloudformation"))
        if group is not None:
            deployment_id = _codedeploy_rollback(stack, target.number, group, clients("codedeploy"))
            return RollbackResult(stack.live_version, target.number, "codedeploy", deployment_id)
        clients("lambda").update_alias(
            FunctionName=stack.function_name,
            Name=LIVE_ALIAS,
            FunctionVersion=target.number,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
    except ClientError as exc:
        raise AwsError(f"rolling {stack_name} back to version {target.number} failed: {_message(exc)}") from None
    except BotoCoreError as exc:
        raise AwsError(f"rolling {stack_name} back to version {target.number} failed: {exc}") from None
    return RollbackResult(
        stack.live_version,
        target.number,
        "alias",
        note="the stack's CodeDeploy deployment group is a placeholder here (no CodeDeploy on "
        "this endpoint): live was pointed at the version directly, without the canary",
    )


def _deployment_group(stack_name: str, cloudformation: Any) -> tuple[str, str] | None:
    """(application, deployment group) when the stack really has them."""
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    by_type = {r["ResourceType"]: r["PhysicalResourceId"] for r in resources}
    application = by_type.get(APPLICATION_TYPE)
    group = by_type.get(DEPLOYMENT_GROUP_TYPE)
    if not application or not group or PLACEHOLDER_PHYSICAL_ID in (application, group):
        return None
    return application, group


def _codedeploy_rollback(stack: StackVersions, target: str, group: tuple[str, str], codedeploy: Any) -> str:
    application, deployment_group = group
    appspec = {
        "version": 0.0,
        "Resources": [
            {
                "live": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": stack.function_name,
                        "Alias": LIVE_ALIAS,
                        "CurrentVersion": stack.live_version,
                        "TargetVersion": target,
                    },
                }
            }
        ],
    }
    response = codedeploy.create_deployment(
        applicationName=application,
        deploymentGroupName=deployment_group,
        description=f"slimserve rollback of {stack.stack_name} to version {target}",
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(appspec)}},
    )
    return str(response["deploymentId"])
