"""CodeDeploy: the alias-scoped service role, and the two traffic hooks with least privilege."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimserve.infra import canary_hook
from slimserve.infra.hooks import HOOKS_DIR

Synth = Callable[..., Any]


@pytest.fixture()
def default(synth: Synth) -> Any:
    return synth(timeout_s=20)




def test_codedeploy_role_is_inline_and_scoped_to_this_alias(default: Any) -> None:
    group = default.only("AWS::CodeDeploy::DeploymentGroup")["Properties"]
    role_id = group["ServiceRoleArn"]["Fn::GetAtt"][0]
    role = default.template_json["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role  # no AWSCodeDeployRoleForLambdaLimited
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "codedeploy.amazonaws.com"
    }
    function_id, _ = default.named("AWS::Lambda::Function", "InferenceFunction")
    function_arn = {"Fn::GetAtt": [function_id, "Arn"]}
    before_id, _ = default.named("AWS::Lambda::Function", "TrafficHooksBeforeAllowTraffic")
    after_id, _ = default.named("AWS::Lambda::Function", "TrafficHooksAfterAllowTraffic")
    rollback_alarms = sorted(alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"])

    statements = default.role_statements(role_id)
    assert statements == [
        {
            "Action": [
                "lambda:GetAlias",
                "lambda:GetProvisionedConcurrencyConfig",
                "lambda:UpdateAlias",
            ],
            "Effect": "Allow",
            "Resource": [function_arn, {"Fn::Join": ["", [function_arn, ":live"]]}],
        },
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": [{"Fn::GetAtt": [after_id, "Arn"]}, {"Fn::GetAtt": [before_id, "Arn"]}],
        },
        {
            "Action": "cloudwatch:DescribeAlarms",
            "Effect": "Allow",
            "Resource": [{"Fn::GetAtt": [alarm_id, "Arn"]} for alarm_id in rollback_alarms],
        },
    ]
    # The alias (whose update starts a deployment) waits for the role's policy.
    (policy_id,) = default.policies_of(role_id)
    (alias,) = default.resources("AWS::Lambda::Alias").values()
    assert policy_id in alias["DependsOn"]


def test_no_codedeploy_acknowledgment_is_left(default: Any) -> None:
    assert not [ack for ack in default.acks if "CodeDeploy" in ack.reason and "IAM4" in ack.rule]


@pytest.mark.parametrize(
    ("hook", "handler"),
    [("BeforeAllowTraffic", "before_allow_traffic"), ("AfterAllowTraffic", "after_allow_traffic")],
)
def test_each_hook_may_invoke_its_target_and_report_to_this_group_only(
    default: Any, hook: str, handler: str
) -> None:
    _, function = default.named("AWS::Lambda::Function", f"TrafficHooks{hook}")
    properties = function["Properties"]
    assert properties["Handler"] == f"canary_hook.{handler}"
    assert properties["Runtime"] == "python3.14"
    assert properties["MemorySize"] == 256
    # 60 s + one 20 s function timeout for each of 3 health requests and 2 canary requests.
    assert properties["Timeout"] == 60 + (3 + 2) * 20
    assert properties["TracingConfig"] == {"Mode": "Active"}
    target = properties["Environment"]["Variables"][canary_hook.ENV_TARGET]
    function_id, _ = default.named("AWS::Lambda::Function", "InferenceFunction")
    version_id, _ = default.named("AWS::Lambda::Version", "InferenceFunction")
    if hook == "BeforeAllowTraffic":
        assert target == {"Ref": version_id}  # the new version itself, before any traffic
    else:
        assert target == {"Fn::Join": ["", [{"Fn::GetAtt": [function_id, "Arn"]}, ":live"]]}

    role_id = properties["Role"]["Fn::GetAtt"][0]
    role = default.template_json["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    statements = default.role_statements(role_id)
    by_action = {json.dumps(statement["Action"]): statement for statement in statements}
    assert set(by_action) == {
        json.dumps(["logs:CreateLogStream", "logs:PutLogEvents"]),
        json.dumps("lambda:InvokeFunction"),
        json.dumps("codedeploy:PutLifecycleEventHookExecutionStatus"),
        json.dumps(["xray:PutTelemetryRecords", "xray:PutTraceSegments"]),
    }
    assert by_action[json.dumps("lambda:InvokeFunction")]["Resource"] == target
    report = by_action[json.dumps("codedeploy:PutLifecycleEventHookExecutionStatus")]["Resource"]
    group_id, _ = default.named("AWS::CodeDeploy::DeploymentGroup", "Rollout")
    assert {"Ref": group_id} in report["Fn::Join"][1]  # arn:...:deploymentgroup:<app>/<group>


def test_the_hook_package_holds_the_code_and_the_recorded_canary(default: Any, tmp_path: Path) -> None:
    _, function = default.named("AWS::Lambda::Function", "TrafficHooksBeforeAllowTraffic")
    asset_hash = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    staged = default.template_path.parent / f"asset.{asset_hash}"
    assert sorted(path.name for path in staged.iterdir()) == ["canary.json", "canary_hook.py"]
    assert (staged / "canary_hook.py").read_text() == Path(canary_hook.__file__).read_text()
    canary = json.loads((staged / "canary.json").read_text())
    manifest = default.stack.settings
    assert (canary["model"], canary["version"]) == (manifest.model_name, manifest.model_version)
    assert canary["check"] == {"output": "logits", "metric": "top1", "threshold": 0.99}
    assert [sample["expected"] for sample in canary["samples"]] == [
        sample.expected for sample in manifest.canary.samples
    ]
    assert (tmp_path / "dist" / "digits" / HOOKS_DIR / "canary.json").is_file()


def test_a_manifest_without_canary_gets_a_health_only_hook(synth: Synth) -> None:
    result = synth(canary=None)
    _, function = result.named("AWS::Lambda::Function", "TrafficHooksBeforeAllowTraffic")
    asset_hash = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    canary = json.loads((result.template_path.parent / f"asset.{asset_hash}" / "canary.json").read_text())
    assert (canary["check"], canary["samples"]) == (None, [])
    assert function["Properties"]["Timeout"] == 60 + 3 * 20
