"""StackOptions and resolve_settings: defaults, derived values and the exact error messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimserve.handler.manifest import load_manifest
from slimserve.infra.options import (
    LOG_RETENTION_DAYS,
    MAX_BODY_BYTES,
    OptionsError,
    StackOptions,
    default_stack_name,
    parse_options,
    resolve_settings,
    threads_for_memory,
)
from slimserve.infra.sizing import DEFAULT_RESERVED_CONCURRENCY_CAP, reserved_concurrency


def test_defaults_are_the_secure_ones() -> None:
    options = parse_options(None)
    assert options == StackOptions()
    assert (options.api, options.auth, options.package, options.rollout) == (
        "http",
        "iam",
        "zip",
        "canary",
    )
    assert options.waf is False
    assert options.snapstart is None  # "where it applies"
    assert options.provisioned_concurrency == 0
    assert (options.throttle_rate_limit, options.throttle_burst_limit) == (50.0, 100)
    assert options.log_retention_days == 30


def test_options_parse_from_json_context_and_from_a_mapping() -> None:
    expected = StackOptions(api="rest", auth="api_key", api_keys=("alice", "bob"))
    raw = {"api": "rest", "auth": "api_key", "api_keys": ["alice", "bob"]}
    assert parse_options(json.dumps(raw)) == expected
    assert parse_options(raw) == expected
    assert parse_options("") == StackOptions()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"api": "rest", "auth": "jwt", "jwt_issuer": "https://i", "jwt_audience": ["a"]},
            (
                "auth=jwt needs api=http: REST APIs have no JWT authorizer "
                "(use auth=iam or auth=api_key with api=rest)"
            ),
        ),
        (
            {"auth": "api_key"},
            (
                "auth=api_key needs api=rest: HTTP APIs have no API keys or usage plans "
                "(use auth=iam or auth=jwt with api=http)"
            ),
        ),
        (
            {"waf": True},
            "waf=true needs api=rest: AWS WAF cannot be associated with an HTTP API",
        ),
        (
            {"auth": "jwt", "jwt_audience": ["a"]},
            "auth=jwt needs jwt_issuer, an https:// URL",
        ),
        (
            {"auth": "jwt", "jwt_issuer": "http://insecure.example", "jwt_audience": ["a"]},
            "auth=jwt needs jwt_issuer, an https:// URL",
        ),
        (
            {"auth": "jwt", "jwt_issuer": "https://issuer.example"},
            "auth=jwt needs at least one jwt_audience",
        ),
        (
            {"jwt_issuer": "https://issuer.example"},
            "jwt_issuer, jwt_audience and jwt_scopes apply only to auth=jwt",
        ),
        (
            {"api": "rest", "auth": "api_key", "api_keys": []},
            "auth=api_key needs at least one name in api_keys",
        ),
        (
            {"api": "rest", "auth": "api_key", "api_keys": ["a", "a"]},
            "api_keys must not repeat a name",
        ),
        (
            {"log_retention_days": 31},
            (
                "log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, "
                "400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 (got 31)"
            ),
        ),
        (
            {"snapstart": True, "provisioned_concurrency": 2},
            (
                "snapstart and provisioned_concurrency are mutually exclusive: Lambda cannot use "
                "SnapStart on a version with provisioned concurrency; set snapstart=false to use "
                "provisioned_concurrency, or provisioned_concurrency=0 to use SnapStart"
            ),
        ),
        (
            {"snapstart": True, "package": "image"},
            "snapstart needs a zip package: Lambda has no SnapStart for container images",
        ),
        (
            {"reserved_concurrency": 2, "provisioned_concurrency": 3, "snapstart": False},
            "provisioned_concurrency (3) cannot exceed reserved_concurrency (2)",
        ),
        (
            {"auth": "none", "reserved_concurrency": 5},
            (
                "auth=none needs allow_anonymous=true: anyone who finds the URL can run (and pay "
                "for) inference, so anonymous access must be acknowledged explicitly"
            ),
        ),
        ({"allow_anonymous": True}, "allow_anonymous applies only to auth=none"),
        ({"jwt_scopes": ["read"]}, "jwt_issuer, jwt_audience and jwt_scopes apply only to auth=jwt"),
        (
            {"api_gateway_cloudwatch_role": False},
            "api_gateway_cloudwatch_role applies only to api=rest",
        ),
        (
            {"waf_rule_versions": ["AWSManagedRulesCommonRuleSet=Version_1.19"]},
            "waf_rule_versions applies only to waf=true",
        ),
        (
            {
                "api": "rest",
                "waf": True,
                "waf_rule_versions": ["AWSManagedRulesAmazonIpReputationList=Version_1.0"],
            },
            (
                "waf_rule_versions: AWSManagedRulesAmazonIpReputationList is not a versioned rule "
                "group of this web ACL (choose from AWSManagedRulesCommonRuleSet, "
                "AWSManagedRulesKnownBadInputsRuleSet)"
            ),
        ),
        (
            {
                "api": "rest",
                "waf": True,
                "waf_rule_versions": [
                    "AWSManagedRulesCommonRuleSet=Version_1.19",
                    "AWSManagedRulesCommonRuleSet=Version_1.18",
                ],
            },
            "waf_rule_versions must not pin a rule group twice",
        ),
        (
            {"budget_monthly_usd": 10},
            (
                "budget_monthly_usd needs alarm_topic_arn or budget_emails: a budget alarm must "
                "notify someone"
            ),
        ),
        ({"budget_emails": ["a@example.com"]}, "budget_emails applies only with budget_monthly_usd"),
        (
            {"budget_monthly_usd": 10, "budget_emails": [f"o{i}@example.com" for i in range(11)]},
            "budget_emails takes at most 10 addresses",
        ),
        (
            {"image_base_digest": "sha256:" + "0" * 64},
            "image_base_digest applies only to package=image",
        ),
    ],
)
def test_conflicting_options_fail_with_the_exact_message(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionsError) as exc_info:
        parse_options(raw)
    assert str(exc_info.value) == message


def test_field_errors_name_the_option() -> None:
    with pytest.raises(OptionsError) as exc_info:
        parse_options({"memory_mb": 64, "colour": "blue"})
    message = str(exc_info.value)
    assert "option memory_mb: Input should be greater than or equal to 128" in message
    assert "option colour: Extra inputs are not permitted" in message


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"http"'])
def test_options_must_be_a_json_object(raw: str) -> None:
    with pytest.raises(OptionsError, match="options must be a JSON object"):
        parse_options(raw)


def test_settings_come_from_the_manifest_unless_overridden(
    make_bundle: Callable[..., Path],
) -> None:
    manifest = load_manifest(make_bundle(memory_mb=2048, timeout_s=15, architecture="arm64"))

    settings = resolve_settings(manifest, StackOptions())
    assert (settings.memory_mb, settings.timeout_s, settings.architecture) == (2048, 15, "arm64")
    assert (settings.python, settings.handler) == ("3.12", "slimserve.handler.main.handler")
    assert settings.stack_name == "slimserve-digits"
    assert settings.snapstart is True
    assert settings.ephemeral_mb == 512

    settings = resolve_settings(manifest, StackOptions(memory_mb=3008, timeout_s=28))
    assert (settings.memory_mb, settings.timeout_s, settings.threads) == (3008, 28, 2)


def test_the_timeout_must_end_before_api_gateways(make_bundle: Callable[..., Path]) -> None:
    manifest = load_manifest(make_bundle(timeout_s=20))
    with pytest.raises(OptionsError) as exc_info:
        resolve_settings(manifest, StackOptions(timeout_s=29))
    assert str(exc_info.value) == (
        "timeout_s must be at most 28 s: API Gateway ends every integration at 29 s, so the "
        "function must finish first (got 29)"
    )

    manifest = load_manifest(make_bundle(timeout_s=30))
    with pytest.raises(OptionsError) as exc_info:
        resolve_settings(manifest, StackOptions())
    assert str(exc_info.value).startswith("manifest runtime.timeout_s must be at most 28 s")


def test_snapstart_applies_only_where_lambda_supports_it(make_bundle: Callable[..., Path]) -> None:
    py312 = load_manifest(make_bundle(python="3.12"))
    assert resolve_settings(py312, StackOptions()).snapstart is True
    assert resolve_settings(py312, StackOptions(snapstart=False)).snapstart is False
    assert resolve_settings(py312, StackOptions(package="image")).snapstart is False
    assert resolve_settings(py312, StackOptions(provisioned_concurrency=1)).snapstart is False

    py311 = load_manifest(make_bundle(python="3.11"))
    assert resolve_settings(py311, StackOptions()).snapstart is False
    with pytest.raises(OptionsError) as exc_info:
        resolve_settings(py311, StackOptions(snapstart=True))
    assert str(exc_info.value) == (
        "snapstart=true is not possible: SnapStart needs Python 3.12 or newer "
        "(manifest runtime.python is 3.11)"
    )


def test_a_big_s3_model_gets_more_tmp_and_therefore_no_snapstart(
    make_bundle: Callable[..., Path],
) -> None:
    manifest = load_manifest(make_bundle()).model_copy(deep=True)
    big = manifest.model_copy(
        update={"model": manifest.model.model_copy(update={"bytes": 900 << 20})}
    )

    settings = resolve_settings(big, StackOptions(package="s3"))
    assert settings.ephemeral_mb == 900 + 64
    assert settings.snapstart is False
    # The zip package never downloads the model: /tmp stays at the default.
    assert resolve_settings(big, StackOptions()).ephemeral_mb == 512

    with pytest.raises(OptionsError) as exc_info:
        resolve_settings(big, StackOptions(package="s3", snapstart=True))
    assert str(exc_info.value) == (
        "snapstart=true is not possible: SnapStart supports at most 512 MiB of /tmp "
        "(package=s3 needs 964 MiB for this model)"
    )

    huge = manifest.model_copy(
        update={"model": manifest.model.model_copy(update={"bytes": 11 << 30})}
    )
    with pytest.raises(OptionsError, match=r"/tmp, which holds at most 10240 MiB"):
        resolve_settings(huge, StackOptions(package="s3"))


def test_the_body_limit_must_fit_lambdas_payload_once_base64_encoded(
    make_bundle: Callable[..., Path],
) -> None:
    # The default fits: 4 MiB arrives base64-encoded as 5,592,408 bytes.
    assert resolve_settings(load_manifest(make_bundle()), StackOptions()).max_body_bytes == 4 << 20
    # The largest that fits: 4 * 4,669,440 / 3 + 64 KiB event = 6,291,456, Lambda's limit.
    assert MAX_BODY_BYTES == 4_669_440
    fits = load_manifest(make_bundle(max_body_bytes=MAX_BODY_BYTES))
    assert resolve_settings(fits, StackOptions()).max_body_bytes == MAX_BODY_BYTES

    five_mib = load_manifest(make_bundle(max_body_bytes=5 * 1024 * 1024))
    with pytest.raises(OptionsError) as exc_info:
        resolve_settings(five_mib, StackOptions())
    assert str(exc_info.value) == (
        "manifest runtime.limits.max_body_bytes (5242880) is too large: API Gateway passes "
        "binary bodies base64-encoded (6990508 bytes for this one), which with the event around "
        "it exceeds Lambda's 6291456-byte synchronous payload, so clients would get a gateway "
        "5xx instead of the handler's 413; at most 4669440"
    )
    just_over = load_manifest(make_bundle(max_body_bytes=MAX_BODY_BYTES + 1))
    with pytest.raises(OptionsError, match=r"\(4669441\) is too large"):
        resolve_settings(just_over, StackOptions())


def test_reserved_concurrency_follows_rate_and_timeout_up_to_the_cap() -> None:
    assert reserved_concurrency(StackOptions(throttle_rate_limit=2.5), 10) == 25
    assert reserved_concurrency(StackOptions(throttle_rate_limit=2.5), 11) == 28  # rounded up
    assert reserved_concurrency(StackOptions(), 20) == DEFAULT_RESERVED_CONCURRENCY_CAP
    assert reserved_concurrency(StackOptions(reserved_concurrency=500), 20) == 500
    assert reserved_concurrency(StackOptions(reserved_concurrency="off"), 20) is None
    # Provisioned concurrency counts against the reservation: never reserve less.
    options = StackOptions(throttle_rate_limit=0.5, provisioned_concurrency=4)
    assert reserved_concurrency(options, 4) == 4


def test_reserved_concurrency_takes_a_number_or_off() -> None:
    assert parse_options({"reserved_concurrency": "off"}).reserved_concurrency == "off"
    with pytest.raises(OptionsError, match=r"option reserved_concurrency"):
        parse_options({"reserved_concurrency": 0})
    with pytest.raises(OptionsError, match=r"option reserved_concurrency"):
        parse_options({"reserved_concurrency": "none"})


@pytest.mark.parametrize(
    ("raw", "option"),
    [
        ({"alarm_topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"}, "alarm_topic_arn"),
        ({"log_kms_key_arn": "alias/aws/logs"}, "log_kms_key_arn"),
        ({"package": "image", "image_base_digest": "latest"}, "image_base_digest"),
        ({"budget_monthly_usd": 0, "budget_emails": ["a@b.co"]}, "budget_monthly_usd"),
        ({"budget_monthly_usd": 1, "budget_emails": ["not an address"]}, "budget_emails.0"),
        ({"api": "rest", "waf": True, "waf_rule_versions": ["CRS=1.0"]}, "waf_rule_versions.0"),
        (
            {"auth": "jwt", "jwt_issuer": "https://i", "jwt_audience": ["a"], "jwt_scopes": ["a b"]},
            "jwt_scopes.0",
        ),
    ],
)
def test_malformed_hardening_options_are_named(raw: dict[str, Any], option: str) -> None:
    with pytest.raises(OptionsError, match=rf"^option {option.replace('.', '[.]')}: "):
        parse_options(raw)


def test_unsupported_python_is_named(make_bundle: Callable[..., Path]) -> None:
    manifest = load_manifest(make_bundle(python="3.9"))
    with pytest.raises(OptionsError) as exc_info:
        resolve_settings(manifest, StackOptions())
    assert str(exc_info.value) == (
        "manifest runtime.python '3.9' is not a Lambda Python runtime this stack supports "
        "(3.11, 3.12, 3.13, 3.14)"
    )


@pytest.mark.parametrize(
    ("memory_mb", "threads"),
    [(128, 1), (1024, 1), (1769, 1), (3008, 2), (5307, 3), (7076, 4), (10240, 6)],
)
def test_threads_follow_the_vcpus_lambda_gives(memory_mb: int, threads: int) -> None:
    assert threads_for_memory(memory_mb) == threads


def test_api_key_names_are_plain() -> None:
    with pytest.raises(OptionsError, match=r"option api_keys\.0: String should match pattern"):
        parse_options({"api": "rest", "auth": "api_key", "api_keys": ["a/b"]})


def test_stack_names_are_valid_cloudformation_names() -> None:
    assert default_stack_name("mini_lm.v2") == "slimserve-mini-lm-v2"
    with pytest.raises(OptionsError, match="option stack_name"):
        parse_options({"stack_name": "1-starts-with-a-digit"})


def test_every_allowed_retention_maps_to_its_own_cdk_value() -> None:
    from slimserve.infra.log_groups import log_retention

    assert len({log_retention(days) for days in LOG_RETENTION_DAYS}) == len(LOG_RETENTION_DAYS)
