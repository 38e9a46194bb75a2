"""Active X-Ray tracing for a function, with its two write actions in a policy of their own.

``tracing=Tracing.ACTIVE`` would make aws-cdk-lib add xray:PutTraceSegments and
xray:PutTelemetryRecords on ``*`` (they support no resource-level permission) to the role's
default policy; the IAM5 acknowledgment that needs would then sit on the policy that holds
every other statement of the role too, and a wildcard added there later would pass unseen.
Here the actions live in their own ``XRayWrite`` policy, acknowledged alone.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from slimserve.infra import nag

XRAY_WRITE_ACTIONS = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]


def trace_actively(function: lambda_.Function, role: iam.Role) -> iam.Policy:
    """Switch ``function`` (created without ``tracing``) to active tracing; returns the policy."""
    cfn_function = function.node.default_child
    assert isinstance(cfn_function, lambda_.CfnFunction)
    cfn_function.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode="Active")
    policy = iam.Policy(
        role,
        "XRayWrite",
        statements=[iam.PolicyStatement(actions=XRAY_WRITE_ACTIONS, resources=["*"])],
        roles=[role],
    )
    nag.acknowledge(policy, nag.XRAY_WRITE_NEEDS_STAR)
    # Traces from the first invocation on: the function waits for its policy.
    function.node.add_dependency(policy)
    return policy
