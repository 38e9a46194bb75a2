"""api=rest: an API Gateway REST API with request validation, API keys and optional WAF."""

from __future__ import annotations

from typing import get_args

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from slimserve.handler.manifest import Datatype
from slimserve.infra import nag
from slimserve.infra.access_logs import rest_api_format
from slimserve.infra.log_groups import retained_log_group
from slimserve.infra.options import StackSettings
from slimserve.infra.waf import RestApiWebAcl

STAGE_NAME = "prod"

# REST APIs do not fall back from a matched resource to a greedy sibling, so every resource
# that exists must carry a method: each intermediate resource of the infer paths gets the
# proxy too. The handler's ASGI app does the actual routing.
PROXY_PATHS = (
    "/{proxy+}",
    "/v2",
    "/v2/{proxy+}",
    "/v2/models",
    "/v2/models/{model_name}",
    "/v2/models/{model_name}/{proxy+}",
    "/v2/models/{model_name}/versions",
    "/v2/models/{model_name}/versions/{model_version}",
    "/v2/models/{model_name}/versions/{model_version}/{proxy+}",
)
# Open Inference Protocol inference endpoints: their JSON bodies are validated at the edge.
INFER_PATHS = (
    "/v2/models/{model_name}/infer",
    "/v2/models/{model_name}/versions/{model_version}/infer",
    # explain takes the same body (its options travel in the free-form `parameters`).
    "/v2/models/{model_name}/explain",
    "/v2/models/{model_name}/versions/{model_version}/explain",
)
# What a REST API treats as binary: a request body whose Content-Type matches reaches Lambda
# base64-encoded (unchanged), and a base64 answer is decoded only when the request's first
# Accept type matches. Open Inference Protocol clients do not pick those headers for API
# Gateway (tritonclient sends binary tensors with neither), so every type is binary: bytes
# arrive as sent (Mangum decodes them; JSON bodies too) and binary outputs come back as bytes
# whatever Accept says. application/octet-stream is already covered by */*; it is listed too
# because LocalStack (4.14) skips */* entries, so that emulated deploys still decode binary
# answers for clients that ask for them.
BINARY_MEDIA_TYPES = ("*/*", "application/octet-stream")


class RestApiFront(Construct):
    """REST API + throttled, logged, traced stage + validator + the chosen auth mode."""

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
        self._api_name = settings.stack_name
        self.access_logs = retained_log_group(self, "AccessLogs", options)
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=self._api_name,
            description=f"slimserve {settings.stack_name} (Open Inference Protocol v2)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            binary_media_types=list(BINARY_MEDIA_TYPES),
            # Stage/method and access logging need API Gateway's CloudWatch role, an account-
            # wide (per region) setting (AWS::ApiGateway::Account): creating it replaces any
            # role set before. api_gateway_cloudwatch_role=false leaves the existing one; the
            # stage then fails to deploy if the account has none.
            cloud_watch_role=options.api_gateway_cloudwatch_role,
            cloud_watch_role_removal_policy=(
                RemovalPolicy.RETAIN if options.api_gateway_cloudwatch_role else None
            ),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=options.throttle_rate_limit,
                throttling_burst_limit=options.throttle_burst_limit,
                # ERROR, not INFO: the access log already records every request; request
                # and response bodies (data trace) are never logged, they are user data.
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=rest_api_format(),
            ),
            default_method_options=apigw.MethodOptions(
                authorization_type=(
                    apigw.AuthorizationType.IAM
                    if options.auth == "iam"
                    else apigw.AuthorizationType.NONE
                ),
                api_key_required=options.auth == "api_key",
            ),
        )
        self.stage = self.api.deployment_stage
        # API Gateway writes stage/method (execution) logs to a log group it creates on first
        # use, with no retention. Creating it first, under the name API Gateway will use,
        # gives it one.
        self.execution_logs = retained_log_group(
            self,
            "ExecutionLogs",
            options,
            name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{STAGE_NAME}",
        )
        self.stage.node.add_dependency(self.execution_logs)
        self.validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        # One invoke permission for the whole API instead of two per method: Lambda's
        # resource policy is size-limited and the methods all reach the same alias anyway.
        integration = apigw.LambdaIntegration(alias, proxy=True, scope_permission_to_method=False)
        request_model = self.api.add_model(
            "InferenceRequest",
            content_type="application/json",
            model_name="InferenceRequest",
            description="Open Inference Protocol v2 inference request",
            schema=inference_request_schema(settings.input_names, settings.output_names),
        )
        self.methods: list[apigw.Method] = []
        for path in PROXY_PATHS:
            self.methods.append(
                self.api.root.resource_for_path(path).add_method(
                    "ANY",
                    integration,
                    request_validator=self.validator,
                    request_parameters=_path_parameters(path),
                )
            )
        for path in INFER_PATHS:
            self.methods.append(
                self.api.root.resource_for_path(path).add_method(
                    "POST",
                    integration,
                    request_validator=self.validator,
                    request_parameters=_path_parameters(path),
                    request_models={"application/json": request_model},
                )
            )

        self.api_keys: dict[str, apigw.IApiKey] = {}
        if options.auth == "api_key":
            plan = self.api.add_usage_plan(
                "UsagePlan",
                name=f"{settings.stack_name}-per-key",
                description="Per-key limits for every API key of this API",
                throttle=apigw.ThrottleSettings(
                    rate_limit=options.usage_plan_rate_limit,
                    burst_limit=options.usage_plan_burst_limit,
                ),
                quota=apigw.QuotaSettings(
                    limit=options.usage_plan_quota_per_day, period=apigw.Period.DAY
                ),
            )
            plan.add_api_stage(stage=self.stage)
            for name in options.api_keys:
                key = self.api.add_api_key(
                    f"ApiKey-{name}", api_key_name=f"{settings.stack_name}-{name}"
                )
                plan.add_api_key(key)
                self.api_keys[name] = key

        self.web_acl = (
            RestApiWebAcl(self, "Waf", settings=settings, stage=self.stage) if options.waf else None
        )
        self.url = self.api.url
        self.execute_api_arn = self.api.arn_for_execute_api(stage=STAGE_NAME)

        for method in self.methods:
            if options.auth == "none":
                nag.acknowledge(method, nag.anonymous_api("REST"))
            elif options.auth == "api_key":
                nag.acknowledge(method, nag.API_KEY_IS_THE_AUTH)
            nag.acknowledge(method, nag.REST_API_NO_COGNITO)
        if options.api_gateway_cloudwatch_role:
            cloud_watch_role = self.api.node.find_child("CloudWatchRole")
            nag.acknowledge(cloud_watch_role, nag.API_GATEWAY_LOGGING_MANAGED_POLICY)
        if not options.waf:
            nag.acknowledge(self.stage, nag.REST_API_WAF_OPT_IN)

    def metric_server_error_rate(self) -> cloudwatch.IMetric:
        # 5XXError is 1 or 0 per request, so its average is the error rate.
        return self._stage_metric("5XXError")

    def metric_client_error_rate(self) -> cloudwatch.IMetric:
        return self._stage_metric("4XXError")

    def _stage_metric(self, metric_name: str) -> cloudwatch.Metric:
        # Literal dimensions, not Refs to the API and stage: the rollback alarms feed the
        # alias's CodeDeploy update policy, and the stage (via the deployment and the methods)
        # already depends on the alias; Refs would close a dependency cycle.
        return cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=metric_name,
            dimensions_map={"ApiName": self._api_name, "Stage": STAGE_NAME},
            statistic="Average",
        )


def _path_parameters(path: str) -> dict[str, bool]:
    names = [part.strip("{}").rstrip("+") for part in path.split("/") if part.startswith("{")]
    return {f"method.request.path.{name}": True for name in names}


def inference_request_schema(
    input_names: tuple[str, ...], output_names: tuple[str, ...]
) -> apigw.JsonSchema:
    """JSON Schema (draft 4, what API Gateway speaks) of an inference request for this model.

    Deliberately structural: names, datatypes and shapes are checked here, the tensor data
    and the limits (batch, elements) by the handler, which knows the model.
    """
    string = apigw.JsonSchema(type=apigw.JsonSchemaType.STRING)
    request_input = apigw.JsonSchema(
        type=apigw.JsonSchemaType.OBJECT,
        required=["name", "shape", "datatype"],
        properties={
            "name": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, enum=list(input_names)),
            "shape": apigw.JsonSchema(
                type=apigw.JsonSchemaType.ARRAY,
                items=apigw.JsonSchema(type=apigw.JsonSchemaType.INTEGER, minimum=0),
            ),
            "datatype": apigw.JsonSchema(
                type=apigw.JsonSchemaType.STRING, enum=list(get_args(Datatype))
            ),
            "parameters": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
            "data": apigw.JsonSchema(),
        },
    )
    requested_output = apigw.JsonSchema(
        type=apigw.JsonSchemaType.OBJECT,
        required=["name"],
        properties={
            "name": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, enum=list(output_names)),
            "parameters": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
        },
    )
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4,
        title="InferenceRequest",
        type=apigw.JsonSchemaType.OBJECT,
        required=["inputs"],
        properties={
            "id": string,
            "parameters": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
            "inputs": apigw.JsonSchema(
                type=apigw.JsonSchemaType.ARRAY,
                min_items=1,
                max_items=len(input_names),
                items=request_input,
            ),
            "outputs": apigw.JsonSchema(
                type=apigw.JsonSchemaType.ARRAY,
                max_items=len(output_names),
                items=requested_output,
            ),
        },
    )
