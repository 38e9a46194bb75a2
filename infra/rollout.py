"""Safe rollout: CodeDeploy shifts the live alias to each new version and rolls back on alarms."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from slimserve.infra import nag
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
    alias: lambda_.Alias,
    rollout: RolloutType,
    alarms: list[cloudwatch.IAlarm],
) -> codedeploy.LambdaDeploymentGroup:
    group = codedeploy.LambdaDeploymentGroup(
        scope,
        construct_id,
        alias=alias,
        deployment_config=DEPLOYMENT_CONFIGS[rollout],
        alarms=alarms,
        auto_rollback=codedeploy.AutoRollbackConfig(
            failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
        ),
    )
    nag.acknowledge(group.role, nag.CODEDEPLOY_MANAGED_POLICY)
    return group
