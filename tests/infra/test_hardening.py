"""The security-review options (issue 15), each asserted on the synthesized template: cost
ceilings, alarms that reach someone, JWT scopes, WAF logging and pins, log encryption, the
account-level API Gateway role, the image base digest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimserve.infra.image import BASE_IMAGE_REPOSITORY
from slimserve.infra.options import WAF_DEFAULT_RULE_VERSIONS

Synth = Callable[..., Any]

TOPIC = "arn:aws:sns:us-east-1:123456789012:slimserve-alarms"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DIGEST = "sha256:" + "ab" * 32



# --- cost ceiling --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "manifest", "reserved"),
    [
        ({}, {"timeout_s": 20}, 100),  # 50 rps x 20 s = 1,000: the default cap
        ({"throttle_rate_limit": 2}, {"timeout_s": 10}, 20),  # rate x timeout
        ({"throttle_rate_limit": 0.1}, {"timeout_s": 5}, 1),  # never below one
        ({"throttle_rate_limit": 0.1, "provisioned_concurrency": 3}, {"timeout_s": 5}, 3),
        ({"reserved_concurrency": 250}, {"timeout_s": 20}, 250),  # explicit beats derived
    ],
)
def test_reserved_concurrency_by_default(
    synth: Synth, options: dict[str, Any], manifest: dict[str, Any], reserved: int
) -> None:
    function = synth(options, **manifest).inference_function()["Properties"]
    assert function["ReservedConcurrentExecutions"] == reserved


def test_reserved_concurrency_can_be_switched_off(synth: Synth) -> None:
    function = synth({"reserved_concurrency": "off"}).inference_function()["Properties"]
    assert "ReservedConcurrentExecutions" not in function


def test_a_budget_alarm_notifies_the_topic_and_the_emails(synth: Synth) -> None:
    result = synth(
        {
            "budget_monthly_usd": 25,
            "budget_emails": ["ops@example.com"],
            "alarm_topic_arn": TOPIC,
        }
    )
    budget = result.only("AWS::Budgets::Budget")["Properties"]
    data = budget["Budget"]
    assert (data["BudgetType"], data["TimeUnit"]) == ("COST", "MONTHLY")
    assert data["BudgetLimit"] == {"Amount": 25, "Unit": "USD"}
    assert data["CostFilters"] == {"TagKeyValue": ["user:slimserve:model$digits"]}
    notifications = budget["NotificationsWithSubscribers"]
    assert [n["Notification"]["NotificationType"] for n in notifications] == ["ACTUAL", "FORECASTED"]
    for notification in notifications:
        assert notification["Subscribers"] == [
            {"SubscriptionType": "EMAIL", "Address": "ops@example.com"},
            {"SubscriptionType": "SNS", "Address": TOPIC},
        ]


def test_no_budget_unless_asked(synth: Synth) -> None:
    synth().template.resource_count_is("AWS::Budgets::Budget", 0)


# --- alarms reach a person -------------------------------------------------------------------


def test_every_alarm_notifies_the_topic_on_alarm_and_on_ok(synth: Synth) -> None:
    alarms = synth({"alarm_topic_arn": TOPIC}).resources("AWS::CloudWatch::Alarm")
    assert len(alarms) == 5
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [TOPIC]
        assert alarm["Properties"]["OKActions"] == [TOPIC]
        # Missing data is "no requests, no failures"; the pre-traffic hook tests each version.
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"


# --- auth ------------------------------------------------------------------------------------------


def test_jwt_scopes_are_required_on_the_route(synth: Synth) -> None:
    result = synth(
        {
            "auth": "jwt",
            "jwt_issuer": "https://issuer.example.com/",
            "jwt_audience": ["api://x"],
            "jwt_scopes": ["infer", "slimserve/read"],
        }
    )
    route = result.only("AWS::ApiGatewayV2::Route")["Properties"]
    assert route["AuthorizationType"] == "JWT"
    assert route["AuthorizationScopes"] == ["infer", "slimserve/read"]


def test_without_scopes_the_route_asks_for_none(synth: Synth) -> None:
    result = synth({"auth": "jwt", "jwt_issuer": "https://i.example/", "jwt_audience": ["a"]})
    assert "AuthorizationScopes" not in result.only("AWS::ApiGatewayV2::Route")["Properties"]


# --- WAF -------------------------------------------------------------------------------------------


@pytest.fixture()
def waf(synth: Synth) -> Any:
    return synth(
        {
            "api": "rest",
            "waf": True,
            "stack_name": "blue-digits",
            "waf_rule_versions": ["AWSManagedRulesKnownBadInputsRuleSet=Version_1.20"],
        }
    )


def test_waf_rule_groups_are_pinned_where_aws_versions_them(waf: Any) -> None:
    rules = {rule["Name"]: rule for rule in waf.only("AWS::WAFv2::WebACL")["Properties"]["Rules"]}
    version = {
        name: rule["Statement"]["ManagedRuleGroupStatement"].get("Version")
        for name, rule in rules.items()
        if "ManagedRuleGroupStatement" in rule["Statement"]
    }
    assert version == {
        "AWSManagedRulesCommonRuleSet": WAF_DEFAULT_RULE_VERSIONS["AWSManagedRulesCommonRuleSet"],
        "AWSManagedRulesKnownBadInputsRuleSet": "Version_1.20",
        "AWSManagedRulesAmazonIpReputationList": None,  # AWS publishes no versions of it
    }


def test_waf_metric_names_belong_to_the_stack(waf: Any) -> None:
    acl = waf.only("AWS::WAFv2::WebACL")["Properties"]
    names = [acl["VisibilityConfig"]["MetricName"]] + [
        rule["VisibilityConfig"]["MetricName"] for rule in acl["Rules"]
    ]
    assert names[0] == "blue-digits-WebAcl"
    assert all(name.startswith("blue-digits-") for name in names)
    assert len(set(names)) == len(names)


def test_waf_logs_every_request_to_an_aws_waf_logs_group(waf: Any) -> None:
    logging = waf.only("AWS::WAFv2::LoggingConfiguration")["Properties"]
    (acl_id,) = waf.resources("AWS::WAFv2::WebACL")
    assert logging["ResourceArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    (destination,) = logging["LogDestinationConfigs"]
    rendered = json.dumps(destination)
    assert ":log-group:aws-waf-logs-blue-digits" in rendered
    assert not rendered.endswith(':*"]]}')  # WAF refuses the ":*" form
    assert logging["RedactedFields"] == [
        {"SingleHeader": {"Name": "authorization"}},
        {"SingleHeader": {"Name": "x-api-key"}},
    ]
    (log_group,) = [
        group["Properties"]
        for group in waf.resources("AWS::Logs::LogGroup").values()
        if "aws-waf-logs-blue-digits-" in json.dumps(group["Properties"].get("LogGroupName"))
    ]
    assert log_group["RetentionInDays"] == 30
    # Retained on stack deletion, so named after the stack's id: a new stack gets a new group.
    assert "AWS::StackId" in json.dumps(log_group["LogGroupName"])


# --- log encryption --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{}, {"api": "rest", "waf": True}, {"package": "s3"}],
    ids=["http", "rest-waf", "s3"],
)
def test_a_customer_managed_key_encrypts_every_log_group(synth: Synth, options: dict[str, Any]) -> None:
    result = synth({**options, "log_kms_key_arn": KEY})
    log_groups = result.resources("AWS::Logs::LogGroup")
    assert len(log_groups) >= 4
    for log_group in log_groups.values():
        assert log_group["Properties"]["KmsKeyId"] == KEY


def test_log_groups_use_cloudwatchs_own_encryption_by_default(synth: Synth) -> None:
    for log_group in synth().resources("AWS::Logs::LogGroup").values():
        assert "KmsKeyId" not in log_group["Properties"]


# --- the account-level API Gateway logging role ------------------------------------------------


def test_rest_can_keep_the_accounts_existing_logging_role(synth: Synth) -> None:
    result = synth({"api": "rest", "api_gateway_cloudwatch_role": False})
    result.template.resource_count_is("AWS::ApiGateway::Account", 0)
    for role in result.resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"], role
    # Logging stays on: it uses the role the account already has.
    stage = result.only("AWS::ApiGateway::Stage")["Properties"]
    assert "AccessLogSetting" in stage
    assert not [ack for ack in result.acks if "IAM4" in ack.rule]


def test_rest_sets_the_logging_role_by_default_and_says_what_it_allows(synth: Synth) -> None:
    result = synth({"api": "rest"})
    result.template.resource_count_is("AWS::ApiGateway::Account", 1)
    (ack,) = [ack for ack in result.acks if "IAM4" in ack.rule]
    assert "FilterLogEvents" in ack.reason and "account-wide" in ack.reason
    assert "api_gateway_cloudwatch_role=false" in ack.reason


# --- image base ----------------------------------------------------------------------------------


def test_the_image_base_can_be_pinned_by_digest(synth: Synth, tmp_path: Path) -> None:
    synth({"package": "image", "image_base_digest": DIGEST})
    dockerfile = (tmp_path / "dist" / "digits" / "Dockerfile").read_text()
    assert dockerfile.splitlines()[1] == f"FROM {BASE_IMAGE_REPOSITORY}:3.12-x86_64@{DIGEST}"
