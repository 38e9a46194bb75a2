"""``GatewayConfig``: what the deployed API and function look like, as far as a local run can
copy them (HTTP or REST API, payload format, stage, routes and their authorization, API keys,
binary media types, timeouts, the function's memory and environment).

``slimserve local`` fills it from the CloudFormation template the stack synthesizes
(build/local/apigw/template.py); ``GatewayConfig.from_manifest`` gives the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slimserve.build.local.apigw.events import ApiType, PayloadFormat
from slimserve.build.local.apigw.routing import Route

MAX_GATEWAY_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload quota (REST and HTTP APIs)
HTTP_API_MAX_TIMEOUT_S = 30.0  # HTTP API integrations: TimeoutInMillis default and maximum
REST_API_DEFAULT_TIMEOUT_S = 29.0  # REST API integrations: TimeoutInMillis default


def _freeze(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(mapping or {})


@dataclass(frozen=True)
class GatewayConfig:
    """What the deployed API and function look like, as far as a local run can copy them."""

    api_type: ApiType = "http"
    payload_format: PayloadFormat = "2.0"
    stage: str = "$default"  # HTTP API "$default" has no path prefix; named stages do
    routes: tuple[Route, ...] = (Route("ANY", "$default"),)
    # name -> value of the API keys x-api-key may carry (local values; AWS generates its own)
    api_keys: Mapping[str, str] = field(default_factory=dict)
    binary_media_types: tuple[str, ...] = ()  # REST API only
    integration_timeout_s: float = HTTP_API_MAX_TIMEOUT_S
    function_timeout_s: float = 20.0
    memory_mb: int = 1024
    environment: Mapping[str, str] = field(default_factory=dict)
    stage_variables: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = MAX_GATEWAY_BODY_BYTES
    source: str = "defaults"  # where this came from, for the startup banner
    notes: tuple[str, ...] = ()  # what could not be copied from the source, and why
    # Function environment variables of the source that are deliberately not set locally.
    skipped_environment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.api_type not in ("http", "rest"):
            raise ValueError(f"api_type must be 'http' or 'rest', not {self.api_type!r}")
        if self.payload_format not in ("1.0", "2.0"):
            raise ValueError(f"payload_format must be '1.0' or '2.0', not {self.payload_format!r}")
        if self.api_type == "rest" and self.payload_format != "1.0":
            raise ValueError("REST APIs only send payload format 1.0")
        if self.api_type == "rest" and self.stage == "$default":
            raise ValueError("REST APIs have named stages (e.g. 'prod')")
        if not self.routes:
            raise ValueError("at least one route is needed")
        if self.integration_timeout_s <= 0 or self.function_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        for route in self.routes:
            if route.authorization not in ("none", "iam", "jwt"):
                raise ValueError(
                    f"route {route.key}: unknown authorization {route.authorization!r}"
                )
            if self.api_type == "rest" and route.authorization == "jwt":
                raise ValueError("REST APIs have no JWT authorizers (HTTP APIs do)")
            if self.api_type == "http" and route.api_key_required:
                raise ValueError("HTTP APIs have no API keys (REST APIs do)")
        object.__setattr__(self, "api_keys", _freeze(self.api_keys))
        object.__setattr__(self, "environment", _freeze(self.environment))
        object.__setattr__(self, "stage_variables", _freeze(self.stage_variables))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "skipped_environment", tuple(self.skipped_environment))

    @classmethod
    def from_manifest(cls, manifest: Any, *, api_type: ApiType = "http") -> GatewayConfig:
        """Defaults for a slimserve deployment: the manifest's runtime settings and an open
        API of the given type (HTTP API: payload 2.0, $default stage and route)."""
        runtime = manifest.runtime
        if api_type == "rest":
            # What aws_apigateway.LambdaRestApi creates: ANY on / and on /{proxy+}, stage prod.
            return cls(
                api_type="rest",
                payload_format="1.0",
                stage="prod",
                routes=(Route("ANY", "/"), Route("ANY", "/{proxy+}")),
                integration_timeout_s=REST_API_DEFAULT_TIMEOUT_S,
                function_timeout_s=float(runtime.timeout_s),
                memory_mb=runtime.memory_mb,
                source="manifest defaults",
            )
        return cls(
            function_timeout_s=float(runtime.timeout_s),
            memory_mb=runtime.memory_mb,
            source="manifest defaults",
        )

    @property
    def stage_prefix(self) -> str:
        """Path prefix the stage adds to URLs ("" for HTTP API's $default stage)."""
        return "" if self.stage == "$default" else f"/{self.stage}"

    @property
    def auth_summary(self) -> str:
        """Who may call, e.g. "IAM (SigV4)", "JWT", "API key", "IAM (SigV4) + API key", "none"."""
        kinds = {route.authorization for route in self.routes}
        parts = [label for kind, label in (("iam", "IAM (SigV4)"), ("jwt", "JWT")) if kind in kinds]
        if any(route.api_key_required for route in self.routes):
            parts.append("API key")
        summary = " + ".join(parts) or "none"
        mixed = len(kinds) > 1 or len({route.api_key_required for route in self.routes}) > 1
        return f"{summary} (varies by route)" if mixed and parts else summary

    def describe(self) -> str:
        api = "HTTP API" if self.api_type == "http" else "REST API"
        return f"{api}, payload {self.payload_format}, stage {self.stage}, auth {self.auth_summary}"
