"""package=s3: the model lives in a versioned, encrypted bucket instead of lambda.zip.

The object key contains the model's sha256 (``models/<sha256>/<asset file>``), so a key names
one model for ever, and the function is pinned to more than the key: its environment carries
the sha256 (integrity: the handler refuses other bytes) and the S3 VersionId the deploy wrote
(availability: a later write to the key makes a new version the function never reads).

Who can change the bucket's objects:
- The bucket policy denies every object write except by the upload role, and every delete to
  everyone (uploads never prune; rollbacks find their model still there).
- The upload role may put and read exactly the one model object and list its prefix.
  aws-cdk-lib's BucketDeployment would grant its handler read/write on the whole bucket and
  offers no way to revoke a grant once the deploy is done: its handler is a singleton custom
  resource that CloudFormation invokes again on every update and delete, so its role must
  outlive the deploy. The role is therefore handed over without policy updates
  (``without_policy_updates``) and carries only the statements below; what it can still do after
  the deploy is write a new version of that one key, which the pinned VersionId ignores.
"""

from __future__ import annotations

import math
from pathlib import Path

from aws_cdk import Duration, Fn, RemovalPolicy, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from slimserve.infra import nag
from slimserve.infra.function import ModelObject
from slimserve.infra.log_groups import retained_log_group
from slimserve.infra.options import OptionsError, StackSettings
from slimserve.infra.sizing import DEFAULT_EPHEMERAL_MB, EPHEMERAL_HEADROOM_MB, MAX_EPHEMERAL_MB

ACCESS_LOG_RETENTION_DAYS = 365
INCOMPLETE_UPLOAD_DAYS = 7
# The upload function copies the model through its /tmp: room for one copy.
UPLOAD_MEMORY_MB = 1024
BUCKET_DEPLOYMENT_HANDLER_PREFIX = "Custom::CDKBucketDeployment"
# Object writes the bucket policy reserves to the upload role, and deletes it refuses to all.
OBJECT_WRITE_ACTIONS = [
    "s3:PutObject",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:RestoreObject",
]
OBJECT_DELETE_ACTIONS = [
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
]


def model_prefix(sha256: str) -> str:
    return f"models/{sha256}/"


class ModelStore(Construct):
    """Bucket + upload of the manifest's model file + a read grant for exactly that version."""

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
        options = settings.options

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
            # No expiry of noncurrent versions: a function version is pinned to its object
            # version, which must never disappear (a write to the key would make it noncurrent).
            lifecycle_rules=[
                s3.LifecycleRule(
                    abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS)
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

        # The model file as it is (a file asset, not a zip), copied unchanged (extract=False):
        # then BucketDeployment can report the VersionId it wrote.
        asset = s3_assets.Asset(self, "ModelAsset", path=str(model_path))
        prefix = model_prefix(settings.model_sha256)
        self.key = prefix + asset.s3_object_key
        model_object_arn = self.bucket.arn_for_objects(self.key)

        upload_logs = retained_log_group(self, "UploadLogs", options)
        self.upload_role = iam.Role(
            self,
            "UploadRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"slimserve {settings.stack_name} model upload (deploy time only)",
        )
        for actions, resources in (
            (["logs:CreateLogStream", "logs:PutLogEvents"], [upload_logs.log_group_arn]),
            (["s3:GetObject"], [asset.bucket.arn_for_objects(asset.s3_object_key)]),
            # GetObject: the handler's HeadObject that reads back the VersionId it wrote.
            (["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"], [model_object_arn]),
        ):
            self.upload_role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))
        self.upload_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],  # `aws s3 sync` lists the destination prefix
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": f"{prefix}*"}},
            )
        )
        self.upload = s3deploy.BucketDeployment(
            self,
            "Upload",
            sources=[s3deploy.Source.bucket(asset.bucket, asset.s3_object_key)],
            destination_bucket=self.bucket,
            destination_key_prefix=prefix,
            extract=False,
            # Never delete older models: function versions CodeDeploy may roll back to use them.
            prune=False,
            retain_on_delete=True,
            memory_limit=UPLOAD_MEMORY_MB,
            ephemeral_storage_size=Size.mebibytes(_upload_ephemeral_mb(settings.model_bytes)),
            role=self.upload_role.without_policy_updates(),
            log_group=upload_logs,
        )
        # The handler's role is handed over immutable, so nothing orders its policy first.
        self.upload.node.add_dependency(self.upload_role)
        self._restrict_writers()
        self._acknowledge_upload_handler()
        self.model_object = ModelObject(
            bucket_name=self.bucket.bucket_name,
            key=self.key,
            sha256=settings.model_sha256,
            version_id=Fn.select(0, self.upload.object_version_ids),
        )

    def _restrict_writers(self) -> None:
        objects = self.bucket.arn_for_objects("*")
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheUploadWritesModels",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=OBJECT_WRITE_ACTIONS,
                resources=[objects],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": self.upload_role.role_arn}},
            )
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="NoOneDeletesModels",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=OBJECT_DELETE_ACTIONS,
                resources=[objects],
            )
        )

    def _acknowledge_upload_handler(self) -> None:
        # BucketDeployment's handler is a singleton function at stack level, not our child.
        for child in Stack.of(self).node.children:
            if child.node.id.startswith(BUCKET_DEPLOYMENT_HANDLER_PREFIX):
                nag.acknowledge(child, *nag.BUCKET_DEPLOYMENT_HANDLER)

    def grant_read_model(self, role: iam.IRole) -> None:
        """s3:GetObjectVersion on exactly the model object: the function always names the
        pinned version, and HeadObject/GetObject with a VersionId need this action alone."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObjectVersion"], resources=[self.bucket.arn_for_objects(self.key)]
            )
        )


def _upload_ephemeral_mb(model_bytes: int) -> int:
    needed = math.ceil(model_bytes / (1024 * 1024)) + EPHEMERAL_HEADROOM_MB
    return min(MAX_EPHEMERAL_MB, max(DEFAULT_EPHEMERAL_MB, needed))
