"""Stack options: what a user may choose on top of the manifest, and the rules between them.

Two layers, so that every rule lives in exactly one place:

- ``StackOptions`` (pydantic) holds the raw choices and enforces the rules that need only the
  options themselves (API type versus auth mode, SnapStart versus provisioned concurrency, ...).
- ``resolve_settings(manifest, options)`` adds the manifest and produces ``StackSettings``, the
  concrete numbers the stack uses; rules that need the manifest (Python version, timeout,
  model size) are checked there.

Every broken rule is an ``OptionsError`` whose message is stable: tests and users match it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from slimserve.handler.manifest import Architecture, Canary, Manifest
from slimserve.infra.errors import OptionsError
from slimserve.infra.sizing import (
    ephemeral_storage_mb,
    reserved_concurrency,
    snapstart_applies,
    threads_for_memory,
)

# CDK context keys the app reads (``cdk synth -c manifest=... -c options=<json>``).
CONTEXT_MANIFEST = "manifest"
CONTEXT_OPTIONS = "options"

ApiType = Literal["http", "rest"]
AuthMode = Literal["iam", "jwt", "api_key", "none"]
PackageType = Literal["zip", "s3", "image"]
RolloutType = Literal["canary", "linear", "all_at_once"]
ApiKeyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
# RFC 6749 scope-token characters (printable ASCII except space, '"' and '\\').
JwtScope = Annotated[str, StringConstraints(pattern=r"^[!#-\[\]-~]{1,128}$")]
EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
# "<managed rule group>=<static version>", e.g. "AWSManagedRulesCommonRuleSet=Version_1.19".
WafRuleVersion = Annotated[str, StringConstraints(pattern=r"^AWSManagedRules[A-Za-z]+=Version_\d+\.\d+$")]
PositiveInt = Annotated[int, Field(ge=1)]
# "off": no reserved concurrency (an account whose concurrency quota is below N + 100 cannot
# reserve any: Lambda keeps 100 unreserved).
ReservedConcurrency = PositiveInt | Literal["off"]

# API Gateway ends every integration after 29 s (raisable only on some REST APIs, and then
# only by a quota request), so a function allowed to run 29 s or more answers nobody.
API_GATEWAY_TIMEOUT_S = 29
MAX_FUNCTION_TIMEOUT_S = API_GATEWAY_TIMEOUT_S - 1

# Lambda's synchronous request payload limit, and room for the event around the body
# (headers, request context) that API Gateway adds.
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
EVENT_ENVELOPE_BYTES = 64 * 1024
# Binary bodies reach Lambda base64-encoded (through a REST API every body is binary, JSON
# too; through an HTTP API every non-text one): 4 bytes for every 3 (a body of 5 MiB arrives
# as 6,990,508 bytes), so the largest body the handler can still answer with its own 413 is
MAX_BODY_BYTES = (LAMBDA_SYNC_PAYLOAD_BYTES - EVENT_ENVELOPE_BYTES) // 4 * 3  # 4,669,440

MAX_BUDGET_EMAILS = 10  # AWS Budgets: 10 e-mail subscribers per notification (plus one topic)

# AWS WAF managed rule groups that have static versions (the IP reputation lists have none), and
# the versions pinned unless waf_rule_versions says otherwise. A pinned version changes only
# when this file (or the option) does; list them with `aws wafv2
# list-available-managed-rule-group-versions --scope REGIONAL --vendor-name AWS --name <group>`.
WAF_VERSIONED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")
WAF_DEFAULT_RULE_VERSIONS: dict[str, str] = {"AWSManagedRulesCommonRuleSet": "Version_1.19"}

SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13", "3.14")

# Values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip


class StackOptions(BaseModel):
    """Choices for the deployed service. Secure defaults: IAM auth, throttled, logged, canary."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stack_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$",
        description="CloudFormation stack name; default slimserve-<manifest name>",
    )
    api: ApiType = "http"
    auth: AuthMode = "iam"
    jwt_issuer: str | None = Field(None, description="https:// issuer URL, for auth=jwt")
    jwt_audience: tuple[str, ...] = Field((), description="accepted 'aud' values, for auth=jwt")
    jwt_scopes: tuple[JwtScope, ...] = Field(
        (), description="scopes a token must carry (any one of them), for auth=jwt"
    )
    allow_anonymous: bool = Field(
        False, description="acknowledge that auth=none lets anyone call (and bill) the API"
    )
    api_keys: tuple[ApiKeyName, ...] = Field(
        ("default",), description="names of the API keys to create, for auth=api_key"
    )
    usage_plan_rate_limit: float = Field(10.0, gt=0, description="requests/s per API key")
    usage_plan_burst_limit: int = Field(20, ge=1, description="burst per API key")
    usage_plan_quota_per_day: int = Field(10_000, ge=1, description="requests/day per API key")
    waf: bool = Field(False, description="attach an AWS WAF web ACL (REST API only)")
    waf_rule_versions: tuple[WafRuleVersion, ...] = Field(
        (), description="pin managed rule groups: 'Group=Version_x.y' (waf=true)"
    )
    api_gateway_cloudwatch_role: bool = Field(
        True,
        description="api=rest: set API Gateway's account-wide CloudWatch Logs role (per region); "
        "false keeps the one the account already has",
    )
    throttle_rate_limit: float = Field(50.0, gt=0, description="stage steady-state requests/s")
    throttle_burst_limit: int = Field(100, ge=1, description="stage burst")
    log_retention_days: int = 30
    log_kms_key_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$",
        description="customer-managed KMS key for every log group (its policy must allow logs)",
    )
    alarm_topic_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$",
        description="SNS topic every alarm notifies (ALARM and OK), and the budget",
    )
    budget_monthly_usd: float | None = Field(
        None, gt=0, description="AWS Budgets cost alarm on this stack's tagged resources"
    )
    budget_emails: tuple[EmailAddress, ...] = Field(
        (), description="e-mail addresses the budget alarm notifies"
    )
    memory_mb: int | None = Field(None, ge=128, le=10240, description="default: manifest")
    timeout_s: int | None = Field(None, ge=1, description="default: manifest; at most 28")
    reserved_concurrency: ReservedConcurrency | None = Field(
        None, description="default: derived from throttle_rate_limit and the timeout; 'off'"
    )
    snapstart: bool | None = Field(None, description="default: on where it applies")
    provisioned_concurrency: int = Field(0, ge=0)
    rollout: RolloutType = "canary"
    package: PackageType = "zip"
    image_base_digest: str | None = Field(
        None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="package=image: pin the Lambda base image to this digest",
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> StackOptions:
        for message in _combination_errors(self):
            raise ValueError(message)
        return self


def _combination_errors(options: StackOptions) -> list[str]:
    """Rules between options, in the order a user should fix them."""
    errors: list[str] = []
    if options.auth == "jwt" and options.api != "http":
        errors.append(
            "auth=jwt needs api=http: REST APIs have no JWT authorizer "
            "(use auth=iam or auth=api_key with api=rest)"
        )
    if options.auth == "api_key" and options.api != "rest":
        errors.append(
            "auth=api_key needs api=rest: HTTP APIs have no API keys or usage plans "
            "(use auth=iam or auth=jwt with api=http)"
        )
    if options.waf and options.api != "rest":
        errors.append("waf=true needs api=rest: AWS WAF cannot be associated with an HTTP API")
    if options.auth == "jwt":
        if not options.jwt_issuer or not options.jwt_issuer.startswith("https://"):
            errors.append("auth=jwt needs jwt_issuer, an https:// URL")
        if not options.jwt_audience:
            errors.append("auth=jwt needs at least one jwt_audience")
    elif options.jwt_issuer is not None or options.jwt_audience or options.jwt_scopes:
        errors.append("jwt_issuer, jwt_audience and jwt_scopes apply only to auth=jwt")
    if options.auth == "none":
        if not options.allow_anonymous:
            errors.append(
                "auth=none needs allow_anonymous=true: anyone who finds the URL can run (and "
                "pay for) inference, so anonymous access must be acknowledged explicitly"
            )
        if not isinstance(options.reserved_concurrency, int):
            errors.append(
                "auth=none needs reserved_concurrency=<N>: a ceiling on the executions (and the "
                "cost) anonymous callers can cause"
            )
    elif options.allow_anonymous:
        errors.append("allow_anonymous applies only to auth=none")
    if not options.api_gateway_cloudwatch_role and options.api != "rest":
        errors.append("api_gateway_cloudwatch_role applies only to api=rest")
    if options.waf_rule_versions and not options.waf:
        errors.append("waf_rule_versions applies only to waf=true")
    pinned = [entry.split("=")[0] for entry in options.waf_rule_versions]
    for group in sorted(set(pinned) - set(WAF_VERSIONED_RULE_GROUPS)):
        errors.append(
            f"waf_rule_versions: {group} is not a versioned rule group of this web ACL "
            f"(choose from {', '.join(WAF_VERSIONED_RULE_GROUPS)})"
        )
    if len(set(pinned)) != len(pinned):
        errors.append("waf_rule_versions must not pin a rule group twice")
    if options.budget_monthly_usd is None and options.budget_emails:
        errors.append("budget_emails applies only with budget_monthly_usd")
    if options.budget_monthly_usd is not None and not (
        options.alarm_topic_arn or options.budget_emails
    ):
        errors.append(
            "budget_monthly_usd needs alarm_topic_arn or budget_emails: a budget alarm must "
            "notify someone"
        )
    if len(options.budget_emails) > MAX_BUDGET_EMAILS:
        errors.append(f"budget_emails takes at most {MAX_BUDGET_EMAILS} addresses")
    if options.image_base_digest is not None and options.package != "image":
        errors.append("image_base_digest applies only to package=image")
    if options.auth == "api_key" and not options.api_keys:
        errors.append("auth=api_key needs at least one name in api_keys")
    if len(set(options.api_keys)) != len(options.api_keys):
        errors.append("api_keys must not repeat a name")
    if options.log_retention_days not in LOG_RETENTION_DAYS:
        errors.append(
            f"log_retention_days must be one of {', '.join(map(str, LOG_RETENTION_DAYS))} "
            f"(got {options.log_retention_days})"
        )
    if options.snapstart and options.provisioned_concurrency > 0:
        errors.append(
            "snapstart and provisioned_concurrency are mutually exclusive: Lambda cannot "
            "use SnapStart on a version with provisioned concurrency; set snapstart=false to "
            "use provisioned_concurrency, or provisioned_concurrency=0 to use SnapStart"
        )
    if options.snapstart and options.package == "image":
        errors.append("snapstart needs a zip package: Lambda has no SnapStart for container images")
    if (
        isinstance(options.reserved_concurrency, int)
        and options.provisioned_concurrency > options.reserved_concurrency
    ):
        errors.append(
            f"provisioned_concurrency ({options.provisioned_concurrency}) cannot exceed "
            f"reserved_concurrency ({options.reserved_concurrency})"
        )
    return errors


def parse_options(raw: Mapping[str, Any] | str | None) -> StackOptions:
    """Options from CDK context: a JSON object string (``-c options=...``), a dict or nothing."""
    if raw is None or raw == "":
        return StackOptions()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise OptionsError(f"options must be a JSON object: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise OptionsError("options must be a JSON object")
    try:
        return StackOptions.model_validate(dict(raw))
    except ValidationError as exc:
        raise OptionsError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    # Our own rule messages are exact (raised as ValueError in the model validator); pydantic's
    # field errors get the option name in front.
    lines = []
    for error in exc.errors():
        if error["type"] == "value_error" and not error["loc"]:
            lines.append(str(error["ctx"]["error"]))
        else:
            where = ".".join(str(part) for part in error["loc"])
            lines.append(f"option {where}: {error['msg']}")
    return "; ".join(lines)


@dataclass(frozen=True)
class StackSettings:
    """The concrete values one stack is built from: options resolved against the manifest."""

    options: StackOptions
    stack_name: str
    python: str
    architecture: Architecture
    handler: str
    memory_mb: int
    timeout_s: int
    threads: int
    snapstart: bool
    ephemeral_mb: int
    model_name: str
    model_version: str
    model_sha256: str
    model_file: str
    model_bytes: int
    max_body_bytes: int
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    reserved_concurrency: int | None  # None: reserved_concurrency=off
    waf_rule_versions: dict[str, str]
    canary: Canary | None  # the held-out requests the pre-traffic hook replays


def resolve_settings(manifest: Manifest, options: StackOptions) -> StackSettings:
    """Apply the options to the manifest; raises OptionsError when the two disagree."""
    python = manifest.runtime.python
    if python not in SUPPORTED_PYTHONS:
        raise OptionsError(
            f"manifest runtime.python {python!r} is not a Lambda Python runtime this stack "
            f"supports ({', '.join(SUPPORTED_PYTHONS)})"
        )
    timeout_s = options.timeout_s if options.timeout_s is not None else manifest.runtime.timeout_s
    if timeout_s > MAX_FUNCTION_TIMEOUT_S:
        source = "timeout_s" if options.timeout_s is not None else "manifest runtime.timeout_s"
        raise OptionsError(
            f"{source} must be at most {MAX_FUNCTION_TIMEOUT_S} s: API Gateway ends every "
            f"integration at {API_GATEWAY_TIMEOUT_S} s, so the function must finish first "
            f"(got {timeout_s})"
        )
    memory_mb = options.memory_mb if options.memory_mb is not None else manifest.runtime.memory_mb
    if not 128 <= memory_mb <= 10240:
        raise OptionsError(f"memory must be between 128 and 10240 MiB (got {memory_mb})")

    max_body_bytes = manifest.runtime.limits.max_body_bytes
    if max_body_bytes > MAX_BODY_BYTES:
        encoded = 4 * math.ceil(max_body_bytes / 3)
        raise OptionsError(
            f"manifest runtime.limits.max_body_bytes ({max_body_bytes}) is too large: API Gateway "
            f"passes binary bodies base64-encoded ({encoded} bytes for this one), which with the "
            f"event around it exceeds Lambda's {LAMBDA_SYNC_PAYLOAD_BYTES}-byte synchronous "
            "payload, so clients would get a gateway 5xx instead of the handler's 413; at most "
            f"{MAX_BODY_BYTES}"
        )
    ephemeral_mb = ephemeral_storage_mb(options.package, manifest.model.bytes)
    snapstart = snapstart_applies(options, python, ephemeral_mb)
    return StackSettings(
        options=options,
        stack_name=options.stack_name or default_stack_name(manifest.name),
        python=python,
        architecture=manifest.runtime.architecture,
        handler=manifest.runtime.handler,
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        threads=threads_for_memory(memory_mb),
        snapstart=snapstart,
        ephemeral_mb=ephemeral_mb,
        model_name=manifest.name,
        model_version=manifest.version,
        model_sha256=manifest.model.sha256,
        model_file=manifest.model.file,
        model_bytes=manifest.model.bytes,
        max_body_bytes=max_body_bytes,
        input_names=tuple(spec.name for spec in manifest.inputs),
        output_names=tuple(spec.name for spec in manifest.outputs),
        reserved_concurrency=reserved_concurrency(options, timeout_s),
        waf_rule_versions=WAF_DEFAULT_RULE_VERSIONS
        | dict(entry.split("=") for entry in options.waf_rule_versions),
        canary=manifest.canary,
    )


def default_stack_name(manifest_name: str) -> str:
    # Manifest names allow '.' and '_', CloudFormation stack names do not.
    return "slimserve-" + re.sub(r"[^A-Za-z0-9-]", "-", manifest_name)
