"""The inference function: role, log group, code package, published version and alias."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_cdk import Duration, IgnoreMode, RemovalPolicy, Size
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from slimserve.handler.constants import (
    ENV_MODEL_S3_BUCKET,
    ENV_MODEL_S3_KEY,
    ENV_MODEL_S3_SHA256,
    ENV_MODEL_S3_VERSION,
    ENV_THREADS,
)
from slimserve.handler.manifest import Manifest
from slimserve.infra import nag
from slimserve.infra.image import image_context_excludes, write_dockerfile
from slimserve.infra.log_groups import retained_log_group
from slimserve.infra.options import StackSettings
from slimserve.infra.tracing import trace_actively
from slimserve.infra.version_record import record_for

LIVE_ALIAS = "live"


_RUNTIMES: dict[str, lambda_.Runtime] = {
    "3.11": lambda_.Runtime.PYTHON_3_11,
    "3.12": lambda_.Runtime.PYTHON_3_12,
    "3.13": lambda_.Runtime.PYTHON_3_13,
    "3.14": lambda_.Runtime.PYTHON_3_14,
}
_ARCHITECTURES = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
_IMAGE_PLATFORMS = {
    "x86_64": ecr_assets.Platform.LINUX_AMD64,
    "arm64": ecr_assets.Platform.LINUX_ARM64,
}


def lambda_runtime(python: str) -> lambda_.Runtime:
    return _RUNTIMES[python]


def built_at(bundle_dir: Path) -> datetime | None:
    """When the build wrote lambda.zip (its last step); the zip's bytes carry no time."""
    zip_path = bundle_dir / "lambda.zip"
    return datetime.fromtimestamp(zip_path.stat().st_mtime, UTC) if zip_path.is_file() else None


@dataclass(frozen=True)
class ModelObject:
    """Where a function with package=s3 finds its model: one object version, one hash."""

    bucket_name: str
    key: str
    sha256: str
    version_id: str


class InferenceFunction(Construct):
    """The Lambda function serving lambda.zip, reachable only through its ``live`` alias.

    Everything the API and CodeDeploy touch is the alias, never ``$LATEST``: a deploy publishes
    a new version and CodeDeploy shifts the alias to it gradually.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        manifest: Manifest,
        bundle_dir: Path,
        model_object: ModelObject | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        options = settings.options
        record = record_for(manifest, built_at(bundle_dir))

        self.log_group = retained_log_group(self, "Logs", options)
        # Least privilege: no AWSLambdaBasicExecutionRole (it can create any log group); the
        # role may write to this function's log group only. The two X-Ray write actions get a
        # policy of their own (tracing.py); ModelStore adds the read of the one model object.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"slimserve {settings.stack_name} inference function",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )

        environment = {ENV_THREADS: str(settings.threads)}
        if model_object is not None:
            environment |= {
                ENV_MODEL_S3_BUCKET: model_object.bucket_name,
                ENV_MODEL_S3_KEY: model_object.key,
                ENV_MODEL_S3_SHA256: model_object.sha256,
                # The exact object version the deploy uploaded: a later write to the key (a new
                # version) never reaches this function version.
                ENV_MODEL_S3_VERSION: model_object.version_id,
            }

        common: dict[str, Any] = {
            "architecture": _ARCHITECTURES[settings.architecture],
            "memory_size": settings.memory_mb,
            "timeout": Duration.seconds(settings.timeout_s),
            "ephemeral_storage_size": Size.mebibytes(settings.ephemeral_mb),
            "environment": environment,
            "role": self.role,
            "log_group": self.log_group,
            "logging_format": lambda_.LoggingFormat.JSON,
            "reserved_concurrent_executions": settings.reserved_concurrency,
            # The model, its gate result and build time (version_record.py). Part of the
            # function's configuration, so a new build (even of the same bytes) changes it
            # and publishes a new version, whose own description says the same.
            "description": record.description(),
            "current_version_options": lambda_.VersionOptions(
                description=record.description(),
                # Old versions stay: `slimserve rollback` points live back at them.
                removal_policy=RemovalPolicy.RETAIN,
            ),
        }
        if options.package == "image":
            write_dockerfile(
                bundle_dir,
                python=settings.python,
                architecture=settings.architecture,
                handler=settings.handler,
                base_digest=options.image_base_digest,
            )
            self.function: lambda_.Function = lambda_.DockerImageFunction(
                self,
                "Function",
                code=lambda_.DockerImageCode.from_image_asset(
                    str(bundle_dir),
                    exclude=image_context_excludes(),
                    ignore_mode=IgnoreMode.DOCKER,
                    platform=_IMAGE_PLATFORMS[settings.architecture],
                ),
                **common,
            )
        else:
            self.function = lambda_.Function(
                self,
                "Function",
                runtime=lambda_runtime(settings.python),
                handler=settings.handler,
                code=lambda_.Code.from_asset(str(bundle_dir / "lambda.zip")),
                snap_start=(
                    lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if settings.snapstart else None
                ),
                **common,
            )
            if settings.snapstart:
                nag.acknowledge(self.function, nag.SNAPSTART_PUBLISHED)
            if settings.python != nag.NAG_LATEST_PYTHON:
                nag.acknowledge(self.function, *nag.pinned_runtime(settings.python))

        trace_actively(self.function, self.role)
        nag.acknowledge(self.function, nag.SYNC_INVOKE_NO_DLQ)

        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=LIVE_ALIAS,
            version=self.function.current_version,
            provisioned_concurrent_executions=options.provisioned_concurrency or None,
        )
