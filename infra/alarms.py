"""CloudWatch alarms on the live alias and the API stage.

All Lambda metrics are the alias's (``FunctionName`` + ``Resource`` dimensions), so during a
canary they cover both the old and the new version: exactly the traffic users see.

Every alarm notifies the ``alarm_topic_arn`` topic when given, on ALARM and on OK, so a person
learns both that something broke and that it recovered; CodeDeploy reads the rollback alarms too.

Missing data stays "not breaching", on purpose. The Lambda metrics are counts and the API
metrics rates of requests that happened: a minute without requests has no errors, throttles or
slow requests, and "breaching" would roll back every deployment of a quiet service and page
someone every quiet night. That an alarm cannot see a canary nobody calls is answered elsewhere:
the BeforeAllowTraffic hook (hooks.py) sends the build's held-out requests to the new version
itself and fails the deployment unless they are answered correctly, so no version takes traffic
untested, whether or not users call it during the canary window.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

PERIOD = Duration.minutes(1)
# Two bad minutes out of three: one cold-start hiccup does not roll a deployment back.
EVALUATION_PERIODS = 3
DATAPOINTS_TO_ALARM = 2

# The handler maps every expected failure to an HTTP status; a Lambda "error" is a crash or a
# timeout, so a few per minute already mean the version is broken.
LAMBDA_ERRORS_PER_MINUTE = 3
LAMBDA_THROTTLES_PER_MINUTE = 5
# Duration p99 at this share of the timeout: requests are about to be cut off.
DURATION_P99_SHARE_OF_TIMEOUT = 0.8
API_5XX_RATE = 0.05
API_4XX_RATE = 0.25


@dataclass(frozen=True)
class ServiceAlarms:
    lambda_errors: cloudwatch.Alarm
    lambda_throttles: cloudwatch.Alarm
    duration_p99: cloudwatch.Alarm
    api_5xx_rate: cloudwatch.Alarm
    api_4xx_rate: cloudwatch.Alarm

    def rollback_alarms(self) -> list[cloudwatch.Alarm]:
        """Alarms that stop and roll back a deployment.

        Not the 4xx rate: clients cause 4xx (bad tensors, missing auth), and one misbehaving
        client must not be able to block every release.
        """
        return [self.lambda_errors, self.lambda_throttles, self.duration_p99, self.api_5xx_rate]


def create_alarms(
    scope: Construct,
    *,
    alias: lambda_.Alias,
    timeout_s: int,
    api_5xx_rate: cloudwatch.IMetric,
    api_4xx_rate: cloudwatch.IMetric,
    topic: sns.ITopic | None = None,
) -> ServiceAlarms:
    def alarm(
        construct_id: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
    ) -> cloudwatch.Alarm:
        created = cloudwatch.Alarm(
            scope,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=EVALUATION_PERIODS,
            datapoints_to_alarm=DATAPOINTS_TO_ALARM,
            # No requests, no failures (see the module docstring).
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        if topic is not None:
            created.add_alarm_action(cloudwatch_actions.SnsAction(topic))
            created.add_ok_action(cloudwatch_actions.SnsAction(topic))
        return created

    duration_threshold_ms = round(timeout_s * 1000 * DURATION_P99_SHARE_OF_TIMEOUT)
    return ServiceAlarms(
        lambda_errors=alarm(
            "LambdaErrors",
            alias.metric_errors(period=PERIOD, statistic="Sum"),
            LAMBDA_ERRORS_PER_MINUTE,
            "Lambda errors (crashes, timeouts) on the live alias",
        ),
        lambda_throttles=alarm(
            "LambdaThrottles",
            alias.metric_throttles(period=PERIOD, statistic="Sum"),
            LAMBDA_THROTTLES_PER_MINUTE,
            "Lambda throttles on the live alias (concurrency exhausted)",
        ),
        duration_p99=alarm(
            "DurationP99",
            alias.metric_duration(period=PERIOD, statistic="p99"),
            duration_threshold_ms,
            f"Lambda duration p99 at {DURATION_P99_SHARE_OF_TIMEOUT:.0%} of the "
            f"{timeout_s} s timeout",
        ),
        api_5xx_rate=alarm(
            "Api5xxRate",
            _with_period(api_5xx_rate),
            API_5XX_RATE,
            f"API 5xx responses above {API_5XX_RATE:.0%} of requests",
        ),
        api_4xx_rate=alarm(
            "Api4xxRate",
            _with_period(api_4xx_rate),
            API_4XX_RATE,
            f"API 4xx responses above {API_4XX_RATE:.0%} of requests (clients failing)",
        ),
    )


def _with_period(metric: cloudwatch.IMetric) -> cloudwatch.IMetric:
    if isinstance(metric, cloudwatch.Metric):
        return metric.with_(period=PERIOD)
    return metric
