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

from slimserve.handler.manifest import Architecture, Manifest

# CDK context keys the app reads (``cdk synth -c manifest=... -c options=<json>``).
CONTEXT_MANIFEST = "manifest"
CONTEXT_OPTIONS = "options"

ApiType = Literal["http", "rest"]
AuthMode = Literal["iam", "jwt", "api_key", "none"]
PackageType = Literal["zip", "s3", "image"]
RolloutType = Literal["canary", "linear", "all_at_once"]
ApiKeyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]

# API Gateway ends every integration after 29 s (raisable only on some REST APIs, and then
# only by a quota request), so a function allowed to run 29 s or more answers nobody.
API_GATEWAY_TIMEOUT_S = 29
MAX_FUNCTION_TIMEOUT_S = API_GATEWAY_TIMEOUT_S - 1

# Lambda gives one full vCPU per 1,769 MB of memory and at most 6 vCPUs (10,240 MB).
MB_PER_VCPU = 1769
MAX_VCPUS = 6

# Lambda's default /tmp, and the most SnapStart supports.
DEFAULT_EPHEMERAL_MB = 512
MAX_EPHEMERAL_MB = 10240
# Room in /tmp beside a downloaded model (partial download file, onnxruntime scratch).
EPHEMERAL_HEADROOM_MB = 64

# Lambda's synchronous request payload limit, and room for the event around the body
# (headers, request context) that API Gateway adds.
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
EVENT_ENVELOPE_BYTES = 64 * 1024

SNAPSTART_MIN_PYTHON = (3, 12)
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13", "3.14")

# Values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip


class OptionsError(ValueError):
    """The stack options are invalid, alone or together with the manifest."""


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
    api_keys: tuple[ApiKeyName, ...] = Field(
        ("default",), description="names of the API keys to create, for auth=api_key"
    )
    usage_plan_rate_limit: float = Field(10.0, gt=0, description="requests/s per API key")
    usage_plan_burst_limit: int = Field(20, ge=1, description="burst per API key")
    usage_plan_quota_per_day: int = Field(10_000, ge=1, description="requests/day per API key")
    waf: bool = Field(False, description="attach an AWS WAF web ACL (REST API only)")
    throttle_rate_limit: float = Field(50.0, gt=0, description="stage steady-state requests/s")
    throttle_burst_limit: int = Field(100, ge=1, description="stage burst")
    log_retention_days: int = 30
    memory_mb: int | None = Field(None, ge=128, le=10240, description="default: manifest")
    timeout_s: int | None = Field(None, ge=1, description="default: manifest; at most 28")
    reserved_concurrency: int | None = Field(None, ge=1)
    snapstart: bool | None = Field(None, description="default: on where it applies")
    provisioned_concurrency: int = Field(0, ge=0)
    rollout: RolloutType = "canary"
    package: PackageType = "zip"

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
    elif options.jwt_issuer is not None or options.jwt_audience:
        errors.append("jwt_issuer and jwt_audience apply only to auth=jwt")
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
        options.reserved_concurrency is not None
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
    model_sha256: str
    model_file: str
    model_bytes: int
    max_body_bytes: int
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


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
        raise OptionsError(f"memory must be between 128 and 10240 MB (got {memory_mb})")

    max_body_bytes = manifest.runtime.limits.max_body_bytes
    if max_body_bytes + EVENT_ENVELOPE_BYTES > LAMBDA_SYNC_PAYLOAD_BYTES:
        raise OptionsError(
            f"manifest runtime.limits.max_body_bytes ({max_body_bytes}) leaves no room in "
            f"Lambda's {LAMBDA_SYNC_PAYLOAD_BYTES}-byte synchronous payload: bodies near it "
            "would fail with 502 at API Gateway instead of the handler's 413; at most "
            f"{LAMBDA_SYNC_PAYLOAD_BYTES - EVENT_ENVELOPE_BYTES}"
        )
    ephemeral_mb = _ephemeral_mb(options.package, manifest.model.bytes)
    snapstart = _snapstart(options, python, ephemeral_mb)
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
        model_sha256=manifest.model.sha256,
        model_file=manifest.model.file,
        model_bytes=manifest.model.bytes,
        max_body_bytes=max_body_bytes,
        input_names=tuple(spec.name for spec in manifest.inputs),
        output_names=tuple(spec.name for spec in manifest.outputs),
    )


def default_stack_name(manifest_name: str) -> str:
    # Manifest names allow '.' and '_', CloudFormation stack names do not.
    return "slimserve-" + re.sub(r"[^A-Za-z0-9-]", "-", manifest_name)


def threads_for_memory(memory_mb: int) -> int:
    """onnxruntime intra-op threads for a memory size: the vCPUs Lambda gives, rounded.

    Rounding (not flooring) because Lambda exposes whole cores and shares time between them:
    at 3,008 MB (1.7 vCPU) two threads finish sooner than one.
    """
    return max(1, min(MAX_VCPUS, round(memory_mb / MB_PER_VCPU)))


def _ephemeral_mb(package: PackageType, model_bytes: int) -> int:
    if package != "s3":
        return DEFAULT_EPHEMERAL_MB
    needed = math.ceil(model_bytes / (1024 * 1024)) + EPHEMERAL_HEADROOM_MB
    if needed > MAX_EPHEMERAL_MB:
        raise OptionsError(
            f"package=s3 downloads the model to /tmp, which holds at most {MAX_EPHEMERAL_MB} MB; "
            f"this model needs {needed} MB"
        )
    return max(DEFAULT_EPHEMERAL_MB, needed)


def _snapstart(options: StackOptions, python: str, ephemeral_mb: int) -> bool:
    """SnapStart on published versions wherever Lambda supports it, unless the user opted out."""
    major, minor = (int(part) for part in python.split("."))
    reasons_not = []
    if (major, minor) < SNAPSTART_MIN_PYTHON:
        reasons_not.append(
            f"SnapStart needs Python 3.12 or newer (manifest runtime.python is {python})"
        )
    if ephemeral_mb > DEFAULT_EPHEMERAL_MB:
        reasons_not.append(
            f"SnapStart supports at most {DEFAULT_EPHEMERAL_MB} MB of /tmp "
            f"(package=s3 needs {ephemeral_mb} MB for this model)"
        )
    if options.snapstart is None:
        return (
            not reasons_not and options.package != "image" and options.provisioned_concurrency == 0
        )
    if options.snapstart and reasons_not:
        raise OptionsError("snapstart=true is not possible: " + "; ".join(reasons_not))
    return options.snapstart
