"""The stack with default options: the function, the HTTP API route and every secure default."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from slimserve.infra.access_logs import HTTP_API_FIELDS

Synth = Callable[..., Any]


@pytest.fixture()
def default(synth: Synth) -> Any:
    return synth(memory_mb=2048, timeout_s=15)


def test_function_comes_from_the_manifest(default: Any) -> None:
    default.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.12",
            "Architectures": ["x86_64"],
            "MemorySize": 2048,
            "Timeout": 15,
            "Handler": "slimserve.handler.main.handler",
            "PackageType": Match.absent(),
            "Environment": {"Variables": {"SLIMSERVE_THREADS": "1"}},
            "TracingConfig": {"Mode": "Active"},
            "LoggingConfig": Match.object_like({"LogFormat": "JSON"}),
            # 50 rps x 15 s = 750 executions at most; the default stops at 100 (sizing.py).
            "ReservedConcurrentExecutions": 100,
        },
    )
    code = default.inference_function()["Properties"]["Code"]
    assert code["S3Key"].endswith(".zip")  # lambda.zip as the asset, unchanged


def test_arm64_and_overrides_from_options(synth: Synth) -> None:
    result = synth({"memory_mb": 3008, "timeout_s": 28}, architecture="arm64", python="3.13")
    result.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "MemorySize": 3008,
            "Timeout": 28,
            "Environment": {"Variables": {"SLIMSERVE_THREADS": "2"}},
        },
    )


def test_http_api_routes_everything_to_the_live_alias_with_iam_auth(default: Any) -> None:
    default.template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    default.template.has_resource_properties(
        "AWS::ApiGatewayV2::Api", {"ProtocolType": "HTTP", "Name": "slimserve-digits"}
    )
    default.template.has_resource_properties(
        "AWS::ApiGatewayV2::Route", {"RouteKey": "ANY /{proxy+}", "AuthorizationType": "AWS_IAM"}
    )
    integration = default.only("AWS::ApiGatewayV2::Integration")["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationUri"] == {"Ref": _logical_id(default, "AWS::Lambda::Alias")}
    # The only resource-policy grant: API Gateway may invoke the alias (CodeDeploy reaches its
    # hooks through its role's policy, not through permissions on the hook functions).
    permission = default.only("AWS::Lambda::Permission")["Properties"]
    assert permission["FunctionName"] == {"Ref": _logical_id(default, "AWS::Lambda::Alias")}


def test_the_stage_is_throttled_and_access_logged_as_json(default: Any) -> None:
    stage = default.only("AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {
        "DetailedMetricsEnabled": True,
        "ThrottlingBurstLimit": 100,
        "ThrottlingRateLimit": 50,
    }
    log_format = json.loads(stage["AccessLogSettings"]["Format"])
    assert log_format == HTTP_API_FIELDS
    assert log_format["requestId"] == "$context.requestId"
    log_group_id = stage["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    assert default.template_json["Resources"][log_group_id]["Type"] == "AWS::Logs::LogGroup"


def test_every_log_group_has_a_retention(default: Any) -> None:
    log_groups = default.resources("AWS::Logs::LogGroup")
    assert len(log_groups) == 4  # function, access logs, the two traffic hooks
    for log_group in log_groups.values():
        assert log_group["Properties"]["RetentionInDays"] == 30
        assert log_group["DeletionPolicy"] == "Retain"


def test_snapstart_on_published_versions_behind_a_live_alias(default: Any) -> None:
    default.template.has_resource_properties(
        "AWS::Lambda::Function", {"SnapStart": {"ApplyOn": "PublishedVersions"}}
    )
    default.template.resource_count_is("AWS::Lambda::Version", 1)
    default.template.has_resource_properties(
        "AWS::Lambda::Alias",
        {
            "Name": "live",
            "FunctionVersion": {
                "Fn::GetAtt": [_logical_id(default, "AWS::Lambda::Version"), "Version"]
            },
            "ProvisionedConcurrencyConfig": Match.absent(),
        },
    )


def test_codedeploy_canary_rolls_back_on_the_alarms(default: Any) -> None:
    group = default.only("AWS::CodeDeploy::DeploymentGroup")["Properties"]
    assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    assert group["AutoRollbackConfiguration"] == {
        "Enabled": True,
        "Events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"],
    }
    assert "AlarmActions" not in str(default.resources("AWS::CloudWatch::Alarm"))
    alarm_ids = {alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"]}
    metrics = {
        default.template_json["Resources"][alarm_id]["Properties"]["MetricName"]
        for alarm_id in alarm_ids
    }
    # The 4xx alarm exists but clients cause 4xx: it must not block releases.
    assert metrics == {"Errors", "Throttles", "Duration", "5xx"}
    alias = default.resources("AWS::Lambda::Alias")
    (alias_resource,) = alias.values()
    update = alias_resource["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["DeploymentGroupName"] == {
        "Ref": _logical_id(default, "AWS::CodeDeploy::DeploymentGroup")
    }
    hooks = _hook_functions(default)
    assert update["BeforeAllowTrafficHook"] == {"Ref": hooks["BeforeAllowTraffic"]}
    assert update["AfterAllowTrafficHook"] == {"Ref": hooks["AfterAllowTraffic"]}


def test_alarms_watch_the_alias_and_the_api(default: Any) -> None:
    alarms = {
        alarm["Properties"]["MetricName"]: alarm["Properties"]
        for alarm in default.resources("AWS::CloudWatch::Alarm").values()
    }
    assert set(alarms) == {"Errors", "Throttles", "Duration", "5xx", "4xx"}
    duration = alarms["Duration"]
    assert duration["ExtendedStatistic"] == "p99"
    assert duration["Threshold"] == 12_000  # 80 % of the 15 s timeout
    for name in ("Errors", "Throttles", "Duration"):
        dimensions = {d["Name"]: d["Value"] for d in alarms[name]["Dimensions"]}
        assert dimensions["Resource"]["Fn::Join"][1][1] == ":live"
    for name in ("5xx", "4xx"):
        assert alarms[name]["Statistic"] == "Average"  # a rate, not a count
        assert alarms[name]["Namespace"] == "AWS/ApiGateway"
    assert all(alarm["TreatMissingData"] == "notBreaching" for alarm in alarms.values())


def test_the_function_role_is_least_privilege(default: Any) -> None:
    function = default.inference_function()["Properties"]
    role_id = function["Role"]["Fn::GetAtt"][0]
    role = default.template_json["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    policies = default.policies_of(role_id)
    statements = {
        name: policy["Properties"]["PolicyDocument"]["Statement"] for name, policy in policies.items()
    }
    # Two policies: the role's own (its log group), and X-Ray's two actions alone, which need
    # Resource "*" and carry the only IAM5 acknowledgment.
    (default_policy,) = [name for name in statements if "DefaultPolicy" in name]
    (xray_policy,) = [name for name in statements if "XRayWrite" in name]
    assert set(statements) == {default_policy, xray_policy}
    assert statements[xray_policy] == [
        {
            "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
            "Effect": "Allow",
            "Resource": "*",
        }
    ]
    assert statements[default_policy] == [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [function["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]},
        }
    ]


def test_the_xray_acknowledgment_covers_its_own_policy_only(default: Any) -> None:
    star = [ack for ack in default.acks if ack.rule == "AwsSolutions::AwsSolutions-IAM5[Resource::*]"]
    assert star, "expected the X-Ray acknowledgments"
    for ack in star:
        assert ack.path.endswith("/Role/XRayWrite"), ack
    # One per traced function: inference and the two hooks.
    assert len(star) == 3


def test_a_wildcard_added_to_the_function_role_is_an_open_finding(
    make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    """The acknowledgment net has no hole: broad statements on the role fail the synth."""
    from aws_cdk import aws_iam as iam

    from slimserve.infra.app import build_app
    from slimserve.infra.options import StackOptions

    app, stack = build_app(make_bundle(), StackOptions(), outdir=str(tmp_path / "out"), validation=False)
    stack.inference.role.add_to_policy(
        iam.PolicyStatement(actions=["s3:GetObject", "dynamodb:Scan"], resources=["*"])
    )
    with pytest.raises(RuntimeError) as exc_info:
        app.synth()
    assert "AwsSolutions-IAM5" in str(exc_info.value)
    report = json.loads((tmp_path / "out" / "validation-report.json").read_text(encoding="utf-8"))
    open_findings = {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        for construct in violation["violatingConstructs"]
    }
    assert (
        "AwsSolutions-IAM5[Resource::*]",
        f"{stack.node.path}/Inference/Role/DefaultPolicy/Resource",
    ) in open_findings


@pytest.mark.parametrize(
    "options",
    [{}, {"package": "s3"}, {"api": "rest", "auth": "api_key", "waf": True}, {"package": "image"}],
    ids=["defaults", "s3", "rest-waf", "image"],
)
def test_no_role_in_the_stack_has_a_wildcard_action(synth: Synth, options: dict[str, Any]) -> None:
    result = synth(options)
    policies = result.resources("AWS::IAM::Policy")
    assert policies
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert not [a for a in _as_list(statement["Action"]) if "*" in a], statement
    for role in result.resources("AWS::IAM::Role").values():
        for inline in role["Properties"].get("Policies", []):
            for statement in inline["PolicyDocument"]["Statement"]:
                assert not [a for a in _as_list(statement["Action"]) if "*" in a], statement


def test_outputs_name_the_url_and_the_alias(default: Any) -> None:
    outputs = default.template_json["Outputs"]
    assert outputs["ApiUrl"]["Value"]["Fn::Join"][1][0]["Fn::GetAtt"][1] == "ApiEndpoint"
    assert outputs["FunctionAlias"]["Value"] == {"Ref": _logical_id(default, "AWS::Lambda::Alias")}
    invoke_arn = outputs["InvokeResourceArn"]["Value"]["Fn::Join"][1]
    assert {"Ref": _logical_id(default, "AWS::ApiGatewayV2::Api")} in invoke_arn
    assert invoke_arn[-1] == "/$default/*/*"



def _hook_functions(result: Any) -> dict[str, str]:
    """Hook name (BeforeAllowTraffic, AfterAllowTraffic) -> the hook function's logical id."""
    return {
        name: logical_id
        for logical_id in result.resources("AWS::Lambda::Function")
        for name in ("BeforeAllowTraffic", "AfterAllowTraffic")
        if logical_id.startswith(f"TrafficHooks{name}Function")
    }




def _logical_id(result: Any, resource_type: str) -> str:
    (logical_id,) = result.resources(resource_type)
    return logical_id


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
