"""Every log group of the stack: retention from the options, kept when the stack goes, and
encrypted with the customer-managed KMS key of ``log_kms_key_arn`` when one is given.

CloudWatch Logs encrypts log data at rest with its own keys by default; a customer-managed key
adds control over who may decrypt (and an audit trail of every decrypt). The key's policy must
allow the ``logs.<region>.amazonaws.com`` service principal (kms:Encrypt*, Decrypt*,
ReEncrypt*, GenerateDataKey*, Describe*), as CloudWatch Logs documents; the stack only refers to
the key and never edits its policy.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from slimserve.infra.options import StackOptions

# CloudWatch's allowed retentions (options.LOG_RETENTION_DAYS) to CDK's named members.
_RETENTION: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(days: int) -> logs.RetentionDays:
    return _RETENTION[days]


def retained_log_group(
    scope: Construct, construct_id: str, options: StackOptions, *, name: str | None = None
) -> logs.LogGroup:
    """A log group with the options' retention (and key), retained on stack deletion."""
    key = (
        kms.Key.from_key_arn(scope, f"{construct_id}Key", options.log_kms_key_arn)
        if options.log_kms_key_arn
        else None
    )
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=log_retention(options.log_retention_days),
        encryption_key=key,
        removal_policy=RemovalPolicy.RETAIN,
    )
