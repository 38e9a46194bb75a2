"""SlimserveStack: one model behind one API, configured by the manifest plus StackOptions."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations, CfnOutput, Stack, Tags
from aws_cdk import aws_sns as sns
from constructs import Construct

from slimserve.handler.manifest import Manifest
from slimserve.infra.alarms import ServiceAlarms, create_alarms
from slimserve.infra.budget import MODEL_TAG, create_budget
from slimserve.infra.function import InferenceFunction
from slimserve.infra.hooks import create_traffic_hooks
from slimserve.infra.http_api import HttpApiFront
from slimserve.infra.model_store import ModelStore
from slimserve.infra.options import StackOptions, StackSettings, resolve_settings
from slimserve.infra.rest_api import RestApiFront
from slimserve.infra.rollout import create_deployment_group

ANONYMOUS_WARNING_ID = "slimserve:anonymous-api"


class SlimserveStack(Stack):
    def __init__(
        self,
        scope: Construct,
        *,
        manifest: Manifest,
        bundle_dir: Path,
        options: StackOptions,
    ) -> None:
        """``bundle_dir`` is ``dist/<name>/``: manifest.json, lambda.zip (and the model file)."""
        self.settings: StackSettings = resolve_settings(manifest, options)
        super().__init__(
            scope,
            self.settings.stack_name,
            description=f"slimserve: {manifest.name} {manifest.version} on AWS Lambda",
        )
        settings = self.settings
        # Cost allocation and ownership: every taggable resource names the model it serves.
        Tags.of(self).add(MODEL_TAG, manifest.name)
        Tags.of(self).add("slimserve:model-version", manifest.version)

        self.model_store = (
            ModelStore(self, "ModelStore", settings=settings, bundle_dir=bundle_dir)
            if options.package == "s3"
            else None
        )
        self.inference = InferenceFunction(
            self,
            "Inference",
            settings=settings,
            manifest=manifest,
            bundle_dir=bundle_dir,
            model_object=self.model_store.model_object if self.model_store else None,
        )
        if self.model_store is not None:
            # Publishing a version runs the init phase (SnapStart snapshots it), and init
            # downloads the model: the function's environment names the VersionId the upload
            # reports (a GetAtt), so CloudFormation uploads the model first.
            self.model_store.grant_read_model(self.inference.role)

        alias = self.inference.alias
        self.api: HttpApiFront | RestApiFront = (
            HttpApiFront(self, "Http", settings=settings, alias=alias)
            if options.api == "http"
            else RestApiFront(self, "Rest", settings=settings, alias=alias)
        )
        alarm_topic = (
            sns.Topic.from_topic_arn(self, "AlarmTopic", options.alarm_topic_arn)
            if options.alarm_topic_arn
            else None
        )
        self.alarms: ServiceAlarms = create_alarms(
            self,
            alias=alias,
            timeout_s=settings.timeout_s,
            api_5xx_rate=self.api.metric_server_error_rate(),
            api_4xx_rate=self.api.metric_client_error_rate(),
            topic=alarm_topic,
        )
        self.hooks = create_traffic_hooks(
            self,
            "TrafficHooks",
            settings=settings,
            bundle_dir=bundle_dir,
            function=self.inference.function,
            new_version=self.inference.function.current_version,
        )
        self.deployment_group = create_deployment_group(
            self,
            "Rollout",
            function=self.inference.function,
            alias=alias,
            rollout=options.rollout,
            alarms=self.alarms.rollback_alarms(),
            hooks=self.hooks,
        )
        self.budget = (
            create_budget(self, "Budget", settings=settings)
            if options.budget_monthly_usd is not None
            else None
        )

        if options.auth == "none":
            Annotations.of(self).add_warning_v2(
                ANONYMOUS_WARNING_ID,
                f"auth=none: the {options.api.upper()} API accepts anonymous requests; anyone "
                "who finds the URL can run (and pay for) inference.",
            )
        CfnOutput(self, "ApiUrl", value=self.api.url, description="Base URL of the API")
        CfnOutput(
            self,
            "FunctionAlias",
            value=alias.function_arn,
            description="The live alias CodeDeploy shifts",
        )
        if options.auth == "iam":
            CfnOutput(
                self,
                "InvokeResourceArn",
                value=self.api.execute_api_arn,
                description="Grant callers execute-api:Invoke on this ARN (IAM auth)",
            )
        if isinstance(self.api, RestApiFront):
            for index, (name, key) in enumerate(self.api.api_keys.items(), start=1):
                CfnOutput(
                    self,
                    f"ApiKeyId{index}",
                    value=key.key_id,
                    description=f"API key {name!r}: aws apigateway get-api-key "
                    "--include-value --api-key <this id>",
                )
