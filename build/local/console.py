"""What a local run prints: the gateway banner (what the local gateway copies from the deployed
stack and what it does not), the EMULATION panel, a curl command that gets through the local
auth, and the function's log lines."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.python import PythonInterpreter
from slimserve.build.local.runtime_api import MAX_REQUEST_PAYLOAD_BYTES
from slimserve.build.units import mib


def stderr_console() -> Console:
    """Where a local run prints unless told otherwise."""
    return Console(stderr=True, soft_wrap=True)


def console_log(console: Console) -> Callable[[str], None]:
    """A log sink printing each line dimmed, as it is."""

    def log(line: str) -> None:
        # Text(): function output may contain [brackets] that rich would read as markup.
        console.print(Text(line, style="dim"), soft_wrap=True)

    return log


def gateway_banner(config: GatewayConfig, url: str) -> Panel:
    """What the local gateway copies from the deployed stack, and what it does not."""
    api = "HTTP API" if config.api_type == "http" else "REST API"
    lines: list[tuple[str, str] | str] = []
    if config.source == "manifest defaults":
        lines.append(
            ("Following the manifest's DEFAULTS, not the stack's template: ", "bold yellow")
        )
        lines.append("what the deployed API does (auth, stage, limits) may differ.\n")
    else:
        lines.append(f"Following {config.source}.\n")
    stage = (
        "no path prefix"
        if not config.stage_prefix
        else f"every path starts with {config.stage_prefix}"
    )
    lines.append(f"{api}, payload format {config.payload_format}, stage {config.stage} ({stage})\n")
    shown = ", ".join(route.key for route in config.routes[:4])
    more = f" and {len(config.routes) - 4} more" if len(config.routes) > 4 else ""
    lines.append(f"routes: {shown}{more}\n")
    kinds = {route.authorization for route in config.routes}
    lines.append(f"auth: {config.auth_summary}\n")
    if "iam" in kinds:
        lines.append(
            "  IAM: send a SigV4 Authorization header (AWS4-HMAC-SHA256 Credential=..., "
            "SignedHeaders=..., Signature=...) and X-Amz-Date, e.g. from awscurl or botocore; "
            "unsigned requests get 403 as on AWS. Signatures are NOT verified locally.\n"
        )
    if "jwt" in kinds:
        lines.append(
            "  JWT: send Authorization: Bearer <token>; without one, 401 as on AWS. Tokens are "
            "NOT verified locally (issuer, audience, expiry, signature).\n"
        )
    if any(route.api_key_required for route in config.routes):
        if config.api_keys:
            for name, value in config.api_keys.items():
                lines.append(
                    f"  API key {name}: send x-api-key: {value} (local value; the deployed one differs)\n"
                )
        else:
            lines.append("  API key required, but no usable key: every request gets 403\n")
    if config.binary_media_types:
        lines.append(f"binary media types: {', '.join(config.binary_media_types)}\n")
    lines.append(
        f"limits: body {mib(config.max_body_bytes)}, Lambda payload "
        f"{mib(MAX_REQUEST_PAYLOAD_BYTES)}, API Gateway answers after "
        f"{config.integration_timeout_s:g} s; function timeout {config.function_timeout_s:g} s, "
        f"memory {config.memory_mb} MiB\n"
    )
    if config.environment:
        lines.append(f"environment: {', '.join(sorted(config.environment))}\n")
    if config.notes:
        lines.append(("differences from the deployed stack:\n", "bold"))
    for note in config.notes:
        lines.append(f"  - {note}\n")
    text = Text.assemble(*lines)
    text.rstrip()
    return Panel(text, title=f"slimserve local: API Gateway at {url}", border_style="cyan")


# A SigV4-shaped header: enough locally (signatures are not verified), refused by AWS.
LOCAL_SIGV4_HEADERS = (
    (
        "Authorization",
        (
            "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20240101/us-east-1/execute-api/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=local"
        ),
    ),
    ("X-Amz-Date", "20240101T000000Z"),
)


def curl_hint(config: GatewayConfig, url: str) -> str:
    """A curl command the local gateway lets through (the health route)."""
    route = next(
        (r for r in config.routes if r.match("GET", "/v2/health/ready") is not None),
        config.routes[0],
    )
    headers: list[tuple[str, str]] = []
    if route.authorization == "iam":
        headers.extend(LOCAL_SIGV4_HEADERS)
    elif route.authorization == "jwt":
        headers.append(("Authorization", "Bearer <any JWT>"))
    if route.api_key_required and config.api_keys:
        headers.append(("x-api-key", next(iter(config.api_keys.values()))))
    options = "".join(f" -H '{name}: {value}'" for name, value in headers)
    return f"curl{options} {url}/v2/health/ready"


def emulation_panel(reason: str, interpreter: PythonInterpreter, packages: int) -> Panel:
    """The label of a run that cannot run the zip as built."""
    return Panel(
        Text.assemble(
            ("EMULATION BUILD. ", "bold"),
            f"{reason}. Running the handler with Python "
            f"{interpreter.version}/{interpreter.lambda_architecture} "
            f"({interpreter.executable}) and the zip's {packages} packages "
            "reinstalled from PyPI for it. This checks the handler, NOT the bundle: "
            "it does not prove lambda.zip works on Lambda.",
        ),
        title="slimserve local: EMULATION",
        border_style="yellow",
    )
