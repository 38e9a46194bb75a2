"""slimserve versions / rollback against fake AWS clients: what is read back from the version
descriptions, which version a rollback picks, what it refuses, and how it points live back
(CodeDeploy when the stack really has it, the alias directly when it is a placeholder)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from slimserve.build.deploy.versions import read_versions, rollback
from slimserve.build.errors import RollbackRefused, StackNotDeployed
from slimserve.infra.version_record import VersionRecord, parse_description

STACK = "slimserve-digits"
FUNCTION = "slimserve-digits-InferenceFunction-abc"
SHA = {n: str(n) * 64 for n in range(1, 5)}


def description(version: str, sha: str, *, passed: bool = True, gate: bool = True) -> str:
    return VersionRecord(
        model="digits",
        version=version,
        sha256=sha,
        gate_metric="accuracy" if gate else None,
        gate_value=0.986111 if gate else None,
        gate_passed=passed if gate else None,
        built_at=datetime(2026, 11, 30, 19, 0, 0, tzinfo=UTC),
    ).description()


def client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Operation")


class FakeAws:
    """CloudFormation, Lambda, S3 and CodeDeploy, as far as versions/rollback use them."""

    def __init__(
        self,
        versions: list[dict[str, Any]],
        *,
        live: str,
        canary: dict[str, float] | None = None,
        codedeploy: bool = False,
        gone: set[str] = frozenset(),
    ) -> None:
        self.versions = versions
        self.live = live
        self.canary = canary or {}
        self.codedeploy = codedeploy
        self.gone = gone
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, service: str) -> FakeAws:
        return self

    # cloudformation
    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if StackName != STACK:
            raise client_error("ValidationError", f"Stack with id {StackName} does not exist")
        arn = f"arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION}:live"
        return {"Stacks": [{"Outputs": [{"OutputKey": "FunctionAlias", "OutputValue": arn}]}]}

    def describe_stack_resources(self, StackName: str) -> dict[str, Any]:
        physical = ("app", "group") if self.codedeploy else ("unknown", "unknown")
        return {
            "StackResources": [
                {"ResourceType": "AWS::CodeDeploy::Application", "PhysicalResourceId": physical[0]},
                {"ResourceType": "AWS::CodeDeploy::DeploymentGroup", "PhysicalResourceId": physical[1]},
            ]
        }

    # lambda
    def get_alias(self, FunctionName: str, Name: str) -> dict[str, Any]:
        return {"FunctionVersion": self.live, "RoutingConfig": {"AdditionalVersionWeights": self.canary}}

    def get_paginator(self, name: str) -> FakeAws:
        return self

    def paginate(self, FunctionName: str) -> list[dict[str, Any]]:
        return [{"Versions": [{"Version": "$LATEST", "Description": ""}, *self.versions]}]

    def update_alias(self, **kwargs: Any) -> None:
        self.calls.append(("update_alias", kwargs))
        self.live = kwargs["FunctionVersion"]

    # s3
    def head_object(self, Bucket: str, Key: str, VersionId: str) -> None:
        if VersionId in self.gone:
            raise client_error("404", "Not Found")

    # codedeploy
    def create_deployment(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("create_deployment", kwargs))
        return {"deploymentId": "d-123"}


def version(number: str, text: str, *, s3_version: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"Version": number, "Description": text, "LastModified": "2026-11-30T19:05:00.000+0000"}
    if s3_version:
        entry["Environment"] = {
            "Variables": {
                "SLIMSERVE_MODEL_S3_BUCKET": "bucket",
                "SLIMSERVE_MODEL_S3_KEY": f"models/{number}/model.onnx",
                "SLIMSERVE_MODEL_S3_VERSION": s3_version,
            }
        }
    return entry


def three_versions(**overrides: Any) -> FakeAws:
    return FakeAws(
        [version("1", description("1", SHA[1])), version("2", description("2", SHA[2])), version("3", description("3", SHA[3]))],
        **{"live": "3", **overrides},
    )


def test_the_record_round_trips_through_a_description() -> None:
    text = description("2", SHA[2])
    assert text == f"slimserve model=digits version=2 sha256={SHA[2]} gate=accuracy:0.986111:passed built=2026-11-30T19:00:00Z"
    assert len(text) <= 256
    record = parse_description(text)
    assert record is not None and (record.version, record.sha256, record.gate_value, record.gate_passed) == ("2", SHA[2], 0.986111, True)
    assert parse_description("slimserve slimserve-digits: model abc") is None  # an older description


def test_versions_lists_each_version_newest_first_with_live_marked() -> None:
    found = read_versions(STACK, three_versions(live="2"))
    assert [v.number for v in found.versions] == ["3", "2", "1"]
    assert found.live_version == "2" and found.function_name == FUNCTION
    assert [v.live_weight for v in found.versions] == [0.0, 1.0, 0.0]
    listed = found.versions[1].as_json()
    assert listed["model_version"] == "2" and listed["sha256"] == SHA[2]
    assert listed["gate"] == {"metric": "accuracy", "value": 0.986111, "passed": True}
    assert listed["built_at"] == "2026-11-30T19:00:00+00:00"


def test_versions_of_a_stack_that_is_not_deployed_says_so() -> None:
    with pytest.raises(StackNotDeployed, match="stack slimserve-other is not deployed"):
        read_versions("slimserve-other", three_versions())


def test_rollback_defaults_to_the_version_before_live_and_points_the_alias_directly() -> None:
    aws = three_versions()
    result = rollback(STACK, None, aws)
    assert (result.from_version, result.to_version, result.via) == ("3", "2", "alias")
    assert aws.calls == [
        ("update_alias", {"FunctionName": FUNCTION, "Name": "live", "FunctionVersion": "2", "RoutingConfig": {"AdditionalVersionWeights": {}}})
    ]


def test_during_a_canary_versions_show_the_split_and_rollback_ends_it() -> None:
    aws = three_versions(live="2", canary={"3": 0.1})
    found = read_versions(STACK, aws)
    assert [v.live_weight for v in found.versions] == [0.1, 0.9, 0.0]
    result = rollback(STACK, None, aws)
    assert (result.from_version, result.to_version) == ("2", "2")
    assert aws.calls[0][1]["RoutingConfig"] == {"AdditionalVersionWeights": {}}


def test_rollback_goes_through_codedeploy_when_the_stack_has_it() -> None:
    aws = three_versions(codedeploy=True)
    result = rollback(STACK, "1", aws)
    assert (result.via, result.deployment_id) == ("codedeploy", "d-123")
    (name, call), = aws.calls
    assert name == "create_deployment" and (call["applicationName"], call["deploymentGroupName"]) == ("app", "group")
    appspec = json.loads(call["revision"]["appSpecContent"]["content"])
    assert appspec["Resources"][0]["live"]["Properties"] == {"Name": FUNCTION, "Alias": "live", "CurrentVersion": "3", "TargetVersion": "1"}


@pytest.mark.parametrize(
    ("versions", "to", "message"),
    [
        ([version("1", description("1", SHA[1], passed=False))], "1", "version 1 (model digits 1) failed its accuracy gate (accuracy 0.986111)"),
        ([version("1", description("1", SHA[1], gate=False))], "1", "has no accuracy gate result"),
        ([version("1", "slimserve slimserve-digits: model abc")], "1", "carries no slimserve model record"),
        ([version("1", description("1", SHA[1]), s3_version="gone-v")], "1", "model artefact s3://bucket/models/1/model.onnx?versionId=gone-v is gone (Not Found)"),
        ([], "7", "has no Lambda version '7' (published versions: 2)"),
        ([], "2", "version 2 is what live already points at"),
        ([], None, "live points at version 2, the oldest published one: there is nothing to roll back to"),
    ],
)
def test_rollback_refuses(versions: list[dict[str, Any]], to: str | None, message: str) -> None:
    aws = FakeAws([*versions, version("2", description("2", SHA[2]))], live="2", gone={"gone-v"})
    with pytest.raises(RollbackRefused, match=re.escape(message)):
        rollback(STACK, to, aws)
    assert aws.calls == []
