"""The CodeDeploy lifecycle hook functions of the live alias (their code: canary_hook.py).

- BeforeAllowTraffic replays the manifest's canary requests against the new version and fails
  the deployment when the answers differ beyond the gate's tolerance, before any traffic shifts.
- AfterAllowTraffic checks readiness through the alias once all traffic is on the new version.

Least privilege: each hook's role may write its own log group, X-Ray, invoke exactly its target
(the new version's ARN, or the live alias's), and report to exactly this deployment group
(``codedeploy:PutLifecycleEventHookExecutionStatus``, granted by aws-cdk-lib's addPreHook /
addPostHook on the group's ARN).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from slimserve.infra import canary_hook, nag
from slimserve.infra.function import LIVE_ALIAS, lambda_runtime
from slimserve.infra.log_groups import retained_log_group
from slimserve.infra.options import StackSettings
from slimserve.infra.tracing import trace_actively

# Synth stages the hook package here, beside the bundle (like package=image's Dockerfile).
HOOKS_DIR = "traffic-hooks"
HOOK_MEMORY_MB = 256
# Time for the hook itself, on top of one function timeout per request it sends.
HOOK_BASE_TIMEOUT_S = 60
HEALTH_REQUESTS = 3  # readiness, model readiness, model metadata
MAX_HOOK_TIMEOUT_S = 900


@dataclass(frozen=True)
class TrafficHooks:
    before_allow_traffic: lambda_.Function
    after_allow_traffic: lambda_.Function


def stage_hook_package(bundle_dir: Path, settings: StackSettings) -> Path:
    """``bundle_dir/traffic-hooks/``: canary_hook.py and canary.json (rewritten only on change)."""
    folder = bundle_dir / HOOKS_DIR
    folder.mkdir(exist_ok=True)
    canary = settings.canary
    document = {
        "model": settings.model_name,
        "version": settings.model_version,
        "check": canary.check.model_dump(mode="json") if canary else None,
        "samples": [sample.model_dump(mode="json") for sample in canary.samples] if canary else [],
    }
    files = {
        canary_hook.CANARY_FILE: json.dumps(document, indent=1, sort_keys=True) + "\n",
        "canary_hook.py": Path(canary_hook.__file__).read_text(encoding="utf-8"),
    }
    for name, content in files.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
    for stale in set(path.name for path in folder.iterdir()) - set(files):
        target = folder / stale
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return folder


def create_traffic_hooks(
    scope: Construct,
    construct_id: str,
    *,
    settings: StackSettings,
    bundle_dir: Path,
    function: lambda_.Function,
    new_version: lambda_.IVersion,
) -> TrafficHooks:
    container = Construct(scope, construct_id)
    code = lambda_.Code.from_asset(str(stage_hook_package(bundle_dir, settings)))
    requests = HEALTH_REQUESTS + (len(settings.canary.samples) if settings.canary else 0)
    timeout_s = min(MAX_HOOK_TIMEOUT_S, HOOK_BASE_TIMEOUT_S + requests * settings.timeout_s)
    # The alias ARN spelled out rather than the alias's Ref: the alias's update policy names
    # these functions, so a Ref back to the alias would be a dependency cycle.
    alias_arn = f"{function.function_arn}:{LIVE_ALIAS}"

    def hook(hook_id: str, handler: str, target_arn: str, purpose: str) -> lambda_.Function:
        hook_scope = Construct(container, hook_id)
        log_group = retained_log_group(hook_scope, "Logs", settings.options)
        role = iam.Role(
            hook_scope,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"slimserve {settings.stack_name} {purpose}",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[target_arn])
        )
        hook_function = lambda_.Function(
            hook_scope,
            "Function",
            runtime=lambda_runtime(nag.NAG_LATEST_PYTHON),
            handler=f"canary_hook.{handler}",
            code=code,
            memory_size=HOOK_MEMORY_MB,
            timeout=Duration.seconds(timeout_s),
            environment={canary_hook.ENV_TARGET: target_arn},
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            description=f"slimserve {settings.stack_name}: {purpose}",
        )
        trace_actively(hook_function, role)
        nag.acknowledge(hook_function, nag.HOOK_ASYNC_NO_DLQ)
        return hook_function

    return TrafficHooks(
        before_allow_traffic=hook(
            "BeforeAllowTraffic",
            "before_allow_traffic",
            new_version.function_arn,
            "canary of a new version before it takes traffic",
        ),
        after_allow_traffic=hook(
            "AfterAllowTraffic",
            "after_allow_traffic",
            alias_arn,
            "health of the live alias after a deployment",
        ),
    )
