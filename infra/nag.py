"""cdk-nag: the rule packs every synth runs, and every acknowledged finding with its reason.

Findings that are not acknowledged make ``app.synth()`` raise, so a clean synth means zero
open findings. Acknowledgments are attached to the narrowest construct that causes them
(never to the stack or app), and each one says why the finding does not apply here. They are
all defined in this module so a reviewer sees the complete list in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct


@dataclass(frozen=True)
class Ack:
    """One acknowledged cdk-nag finding: the rule id (with its finding suffix) and why."""

    rule: str
    reason: str


def apply_packs(app: App) -> None:
    """Run the AwsSolutions and Serverless packs over every stack of ``app`` at synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))


def acknowledge(construct: IConstruct, *acks: Ack) -> None:
    Validations.of(construct).acknowledge(
        *(Acknowledgment(id=ack.rule, reason=ack.reason) for ack in acks)
    )


# --- the inference function -------------------------------------------------------------------

XRAY_WRITE_NEEDS_STAR = Ack(
    "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
    "Active X-Ray tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, which "
    "support no resource-level permissions; this policy holds exactly those two actions and "
    "nothing else, so the acknowledgment covers no other statement of the role.",
)
SYNC_INVOKE_NO_DLQ = Ack(
    "Serverless::Serverless-LambdaDLQ",
    "API Gateway invokes the function synchronously and returns its errors to the caller; a "
    "dead-letter queue only ever receives failed asynchronous invocations.",
)

SNAPSTART_PUBLISHED = Ack(
    "Annotation::@aws-cdk/aws-lambda:snapStartRequirePublish",
    "Every deploy publishes a version (current_version) and the API reaches the function only "
    "through the live alias on it, so SnapStart always applies.",
)


# The newest Lambda Python runtime cdk-nag 3.0.2 knows: only older ones raise L1 and
# LambdaLatestVersion. (test_nag's synth on it proves there is then nothing to acknowledge.)
NAG_LATEST_PYTHON = "3.14"


def pinned_runtime(python: str) -> tuple[Ack, ...]:
    reason = (
        f"The runtime is pinned to Python {python} by the manifest because lambda.zip holds "
        f"native wheels and .pyc files built for exactly that interpreter; rebuild the bundle "
        f"with a newer runtime.python to move."
    )
    return (
        Ack("AwsSolutions::AwsSolutions-L1", reason),
        Ack("Serverless::Serverless-LambdaLatestVersion", reason),
    )


# --- model upload (package=s3): aws-cdk-lib's BucketDeployment --------------------------------

_UPLOAD_RUNTIME = (
    "The upload function's runtime is chosen by aws-cdk-lib's BucketDeployment (its bundled "
    "handler code is tested against it) and moves with aws-cdk-lib upgrades."
)
BUCKET_DEPLOYMENT_HANDLER = (
    Ack("AwsSolutions::AwsSolutions-L1", _UPLOAD_RUNTIME),
    Ack("Serverless::Serverless-LambdaLatestVersion", _UPLOAD_RUNTIME),
    Ack(
        "Serverless::Serverless-LambdaDLQ",
        "CloudFormation invokes the upload function as a custom resource and fails (and rolls "
        "back) the deployment when it fails; a dead-letter queue would hold events no one "
        "replays.",
    ),
    Ack(
        "Serverless::Serverless-LambdaTracing",
        "The upload function runs once per deployment inside CloudFormation, which records its "
        "outcome; X-Ray traces of an S3 copy would add cost and no insight.",
    ),
)

# --- REST API -----------------------------------------------------------------------------------

REST_API_NO_COGNITO = Ack(
    "AwsSolutions::AwsSolutions-COG4",
    "Callers authenticate as option auth says (IAM SigV4 by default, API keys, or explicitly "
    "none); the kit has no Cognito user pool of its own to attach to methods.",
)
REST_API_WAF_OPT_IN = Ack(
    "AwsSolutions::AwsSolutions-APIG3",
    "AWS WAF is opt-in (option waf=true) because a web ACL has a monthly and per-request "
    "cost; without it the stage is still throttled, request-validated and access-logged.",
)
API_GATEWAY_LOGGING_MANAGED_POLICY = Ack(
    "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AmazonAPIGatewayPushToCloudWatchLogs]",
    "AmazonAPIGatewayPushToCloudWatchLogs allows logs:CreateLogGroup, CreateLogStream, "
    "DescribeLogGroups, DescribeLogStreams, PutLogEvents, GetLogEvents and FilterLogEvents on "
    "every log group of the account. Only apigateway.amazonaws.com can assume this role, and "
    "it is API Gateway's account-wide (per region) logging role (AWS::ApiGateway::Account): "
    "it serves every REST API of the region, so it cannot be narrowed to this stack's log "
    "groups, and setting it replaces any role set before. Keep an existing role with "
    "api_gateway_cloudwatch_role=false.",
)


def anonymous_api(api: str) -> Ack:
    return Ack(
        "AwsSolutions::AwsSolutions-APIG4",
        f"Anonymous access to the {api} API was requested with auth=none and acknowledged with "
        "allow_anonymous=true; synth refuses it without an explicit reserved_concurrency "
        "ceiling on what anonymous callers can run, and prints a warning.",
    )


API_KEY_IS_THE_AUTH = Ack(
    "AwsSolutions::AwsSolutions-APIG4",
    "auth=api_key was chosen explicitly. API keys identify, throttle and meter callers through "
    "a usage plan; AWS advises against using them for authorization (a key is a long-lived "
    "secret every client holds and sends with each request). infra/README.md says they are "
    "for metering and points to auth=iam for access control.",
)

# --- rollout: CodeDeploy lifecycle hooks ---------------------------------------------------------

HOOK_ASYNC_NO_DLQ = Ack(
    "Serverless::Serverless-LambdaDLQ",
    "CodeDeploy invokes its lifecycle hook asynchronously and waits for the hook to report a "
    "status; the hook reports Failed on any error, and an unreported hook fails and rolls back "
    "the deployment at CodeDeploy's timeout. A queued event replayed after that could report "
    "to no deployment.",
)
