"""The synth matrix: API type x auth mode x package x cold-start strategy.

Every combination must synthesize with zero open cdk-nag findings (AwsSolutions + Serverless),
no acknowledgment that suppresses nothing, a specific reason on every acknowledgment, and a
template cfn-lint passes. Test ids read like ``rest-api_key-hardened|s3|provisioned``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

JWT = {
    "jwt_issuer": "https://issuer.example.com/",
    "jwt_audience": ["slimserve"],
    "jwt_scopes": ["infer"],
}
ANONYMOUS = {"auth": "none", "allow_anonymous": True, "reserved_concurrency": 10}
# Everything a security review asked for, at once (issue 15).
HARDENED = {
    "waf": True,
    "waf_rule_versions": ["AWSManagedRulesKnownBadInputsRuleSet=Version_1.20"],
    "alarm_topic_arn": "arn:aws:sns:us-east-1:123456789012:slimserve-alarms",
    "budget_monthly_usd": 50,
    "budget_emails": ["ops@example.com"],
    "log_kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}
API_AUTH: dict[str, dict[str, Any]] = {
    "http-iam": {"api": "http", "auth": "iam"},
    "http-jwt": {"api": "http", "auth": "jwt", **JWT},
    "http-none": {"api": "http", **ANONYMOUS},
    "rest-iam-own_logging_role": {"api": "rest", "auth": "iam", "api_gateway_cloudwatch_role": False},
    "rest-api_key-hardened": {"api": "rest", "auth": "api_key", **HARDENED},
    "rest-none": {"api": "rest", **ANONYMOUS},
}
DIGEST = {"image_base_digest": "sha256:" + "0" * 64}
PACKAGES = ("zip", "s3", "image")
# SnapStart is the default where it applies (zip and s3); images never get it.
COLD_START: dict[str, dict[str, Any]] = {
    "snapstart": {},
    "provisioned": {"provisioned_concurrency": 2},
}
ANONYMOUS_WARNING = "Annotation::slimserve:anonymous-api"

MATRIX = [
    pytest.param(
        {
            **API_AUTH[api_auth],
            "package": package,
            **COLD_START[cold_start],
            **(DIGEST if package == "image" else {}),
        },
        id=f"{api_auth}|{package}|{cold_start}",
    )
    for api_auth, package, cold_start in itertools.product(API_AUTH, PACKAGES, COLD_START)
]


@pytest.mark.parametrize("options", MATRIX)
def test_synth_is_clean_under_cdk_nag_and_cfn_lint(
    options: dict[str, Any],
    synth: Callable[..., Any],
    cfn_lint: Callable[[Path], list[str]],
) -> None:
    result = synth(options)  # raises if any cdk-nag finding is open

    expected_warnings = (
        [("Construct Annotations", ANONYMOUS_WARNING, result.stack.stack_name)]
        if options["auth"] == "none"
        else []
    )
    assert result.open_findings() == expected_warnings

    # Every acknowledgment the stack made suppressed at least one real finding. (Acknowledged
    # CDK annotation warnings are not listed in the report; test_nag checks that one.)
    made = {(ack.path, ack.rule) for ack in result.acks if not ack.rule.startswith("Annotation::")}
    stale = made - result.acknowledged_findings()
    assert not stale, f"acknowledgments that suppress nothing: {sorted(stale)}"

    assert cfn_lint(result.template_path) == []

    snapstart = "SnapStart" in str(result.template_json)
    assert snapstart == (options["package"] != "image" and "provisioned_concurrency" not in options)


def test_the_matrix_covers_every_choice() -> None:
    from typing import get_args

    from slimserve.infra.options import ApiType, AuthMode, PackageType

    ids = [param.id for param in MATRIX]
    assert len(ids) == len(set(ids)) == 36
    chosen = [param.values[0] for param in MATRIX]
    assert {o["api"] for o in chosen} == set(get_args(ApiType))
    assert {o["auth"] for o in chosen} == set(get_args(AuthMode))
    assert {o["package"] for o in chosen} == set(get_args(PackageType))
