"""Safe rollout: CodeDeploy tests each new version, shifts the live alias to it gradually and
rolls back on a failed canary or an alarm.

CodeDeploy's service role gets an inline policy scoped to this function, its alias, its two hooks
and its rollback alarms, instead of AWSCodeDeployRoleForLambdaLimited (``lambda:UpdateAlias``
on every function of the account, S3 reads on ``arn:aws:s3:::*/CodeDeploy/*``). aws-cdk-lib's
LambdaDeploymentGroup adds that managed policy to any role it is given, so it gets the role
without policy updates and the statements are attached here.
"""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from slimserve.infra.function import LIVE_ALIAS
from slimserve.infra.hooks import TrafficHooks
from slimserve.infra.options import RolloutType

DEPLOYMENT_CONFIGS: dict[RolloutType, codedeploy.ILambdaDeploymentConfig] = {
    "canary": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    "linear": codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE,
    "all_at_once": codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
}


def create_deployment_group(
    scope: Construct,
    construct_id: str,
    *,
    function: lambda_.Function,
    alias: lambda_.Alias,
    rollout: RolloutType,
    alarms: list[cloudwatch.Alarm],
    hooks: TrafficHooks,
) -> codedeploy.LambdaDeploymentGroup:
    role = iam.Role(
        scope,
        f"{construct_id}Role",
        assumed_by=iam.ServicePrincipal("codedeploy.amazonaws.com"),
        description="CodeDeploy: shift the live alias, run its hooks, watch its alarms",
    )
    # Spelled out, not the alias's Ref: the alias's update policy depends on this role's policy.
    alias_arn = f"{function.function_arn}:{LIVE_ALIAS}"
    policy = iam.Policy(
        role,
        "AliasShift",
        roles=[role],
        statements=[
            # Lambda authorizes alias actions against the function's ARN (its developer guide,
            # "Resources and conditions for Lambda actions"); the alias's ARN covers the
            # qualified form. Both name this one function.
            iam.PolicyStatement(
                actions=[
                    "lambda:GetAlias",
                    "lambda:UpdateAlias",
                    "lambda:GetProvisionedConcurrencyConfig",
                ],
                resources=[function.function_arn, alias_arn],
            ),
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[
                    hooks.before_allow_traffic.function_arn,
                    hooks.after_allow_traffic.function_arn,
                ],
            ),
            iam.PolicyStatement(
                actions=["cloudwatch:DescribeAlarms"],
                resources=[alarm.alarm_arn for alarm in alarms],
            ),
        ],
    )
    group = codedeploy.LambdaDeploymentGroup(
        scope,
        construct_id,
        alias=alias,
        deployment_config=DEPLOYMENT_CONFIGS[rollout],
        alarms=list(alarms),
        auto_rollback=codedeploy.AutoRollbackConfig(
            failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
        ),
        role=role.without_policy_updates(),
        pre_hook=hooks.before_allow_traffic,
        post_hook=hooks.after_allow_traffic,
    )
    # A deployment (an alias update) may start only once CodeDeploy may do its work.
    alias.node.add_dependency(policy)
    return group
