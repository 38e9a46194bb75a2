"""api=http: an API Gateway HTTP API in front of the function's alias."""

from __future__ import annotations

from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from slimserve.infra import nag
from slimserve.infra.access_logs import HttpStageAccessLogs
from slimserve.infra.log_groups import retained_log_group
from slimserve.infra.options import StackSettings

# One greedy route: the handler's ASGI app does the routing (Open Inference Protocol paths, /docs).
PROXY_ROUTE_PATH = "/{proxy+}"
# The $default stage serves at the API's root, so no stage name appears in request paths.
STAGE_NAME = "$default"


class HttpApiFront(Construct):
    """HTTP API + throttled, access-logged $default stage + the chosen authorizer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        alias: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        options = settings.options
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=settings.stack_name,
            description=f"slimserve {settings.stack_name} (Open Inference Protocol v2)",
            create_default_stage=False,
        )
        self.route = self.api.add_routes(
            path=PROXY_ROUTE_PATH,
            methods=[apigwv2.HttpMethod.ANY],
            integration=integrations.HttpLambdaIntegration(
                "Function",
                alias,
                payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
            ),
            authorizer=_authorizer(settings),
            # With jwt_scopes, a token must carry at least one of them ("scope"/"scp" claim).
            authorization_scopes=list(options.jwt_scopes) or None,
        )[0]

        self.access_logs = retained_log_group(self, "AccessLogs", options)
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name=STAGE_NAME,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=options.throttle_rate_limit,
                burst_limit=options.throttle_burst_limit,
            ),
            access_log_settings=HttpStageAccessLogs(self.access_logs),
            detailed_metrics_enabled=True,
        )
        self.url = self.api.api_endpoint + "/"
        self.execute_api_arn = self.api.arn_for_execute_api(stage=STAGE_NAME)

        if options.auth == "none":
            nag.acknowledge(self.route, nag.anonymous_api("HTTP"))

    def metric_server_error_rate(self) -> cloudwatch.IMetric:
        # The 5xx metric is 1 or 0 per request, so its average is the error rate.
        return self.api.metric_server_error(statistic="Average")

    def metric_client_error_rate(self) -> cloudwatch.IMetric:
        return self.api.metric_client_error(statistic="Average")


def _authorizer(settings: StackSettings) -> apigwv2.IHttpRouteAuthorizer:
    options = settings.options
    if options.auth == "iam":
        return authorizers.HttpIamAuthorizer()
    if options.auth == "jwt":
        assert options.jwt_issuer is not None  # StackOptions guarantees it for auth=jwt
        return authorizers.HttpJwtAuthorizer(
            "Jwt", options.jwt_issuer, jwt_audience=list(options.jwt_audience)
        )
    return apigwv2.HttpNoneAuthorizer()
