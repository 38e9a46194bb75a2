"""package=s3: the model lives in a versioned, encrypted bucket instead of lambda.zip.

The object key contains the model's sha256 (``models/<sha256>/<file>``), so a key names one
model for ever: a rollback to an older function version finds its own model still there
(uploads never prune), and the function verifies the downloaded bytes against the same hash.
"""

from __future__ import annotations

import math
from pathlib import Path

from aws_cdk import DefaultStackSynthesizer, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from slimserve.infra import nag
from slimserve.infra.function import ModelObject, log_retention
from slimserve.infra.options import MAX_EPHEMERAL_MB, OptionsError, StackSettings

ACCESS_LOG_RETENTION_DAYS = 365
NONCURRENT_VERSION_RETENTION_DAYS = 90
# The upload function unpacks the asset zip next to itself in /tmp: room for both copies.
UPLOAD_MEMORY_MB = 1024
BUCKET_DEPLOYMENT_HANDLER_PREFIX = "Custom::CDKBucketDeployment"


def model_key(sha256: str, file_name: str) -> str:
    return f"models/{sha256}/{file_name}"


class ModelStore(Construct):
    """Bucket + upload of the manifest's model file + a read grant for exactly that object."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StackSettings, bundle_dir: Path
    ) -> None:
        super().__init__(scope, construct_id)
        if "/" in settings.model_file or "\\" in settings.model_file:
            raise OptionsError(
                f"package=s3 needs manifest model.file to be a file name beside manifest.json "
                f"(got {settings.model_file!r})"
            )
        model_path = bundle_dir / settings.model_file
        if not model_path.is_file():
            raise OptionsError(f"package=s3 needs the model file beside the manifest: {model_path}")

        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(ACCESS_LOG_RETENTION_DAYS))],
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="model-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_RETENTION_DAYS)
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.key = model_key(settings.model_sha256, settings.model_file)

        # The upload function runs only during deployments. Its own role (rather than the one
        # BucketDeployment would make) writes only its own log group instead of carrying
        # AWSLambdaBasicExecutionRole; BucketDeployment adds its S3 grants to it.
        upload_logs = logs.LogGroup(
            self,
            "UploadLogs",
            retention=log_retention(settings.options.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN,
        )
        upload_role = iam.Role(
            self,
            "UploadRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"slimserve {settings.stack_name} model upload (deploy time only)",
        )
        upload_role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[upload_logs.log_group_arn],
            )
        )
        self.upload = s3deploy.BucketDeployment(
            self,
            "Upload",
            sources=[
                s3deploy.Source.asset(str(bundle_dir), exclude=["*", f"!{settings.model_file}"])
            ],
            destination_bucket=self.bucket,
            destination_key_prefix=f"models/{settings.model_sha256}/",
            # Never delete older models: function versions CodeDeploy may roll back to use them.
            prune=False,
            retain_on_delete=True,
            memory_limit=UPLOAD_MEMORY_MB,
            ephemeral_storage_size=Size.mebibytes(_upload_ephemeral_mb(settings.model_bytes)),
            role=upload_role,
            log_group=upload_logs,
        )
        self._acknowledge_upload_findings(upload_role)
        self.model_object = ModelObject(
            bucket_name=self.bucket.bucket_name, key=self.key, sha256=settings.model_sha256
        )

    def _acknowledge_upload_findings(self, upload_role: iam.IRole) -> None:
        stack = Stack.of(self)
        bucket_logical_id = stack.resolve(
            stack.get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        )
        nag.acknowledge(
            upload_role,
            *nag.bucket_deployment_grants(
                model_bucket_logical_id=bucket_logical_id,
                asset_bucket_qualifier=DefaultStackSynthesizer.DEFAULT_QUALIFIER,
            ),
        )
        # BucketDeployment's handler is a singleton function at stack level, not our child.
        for child in stack.node.children:
            if child.node.id.startswith(BUCKET_DEPLOYMENT_HANDLER_PREFIX):
                nag.acknowledge(child, *nag.BUCKET_DEPLOYMENT_HANDLER)

    def grant_read_model(self, role: iam.IRole) -> None:
        """s3:GetObject on exactly the model object (HeadObject is covered by GetObject)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(self.key)]
            )
        )


def _upload_ephemeral_mb(model_bytes: int) -> int:
    needed = 2 * math.ceil(model_bytes / (1024 * 1024)) + 64
    return min(MAX_EPHEMERAL_MB, max(512, needed))
