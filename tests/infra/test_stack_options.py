"""Each stack option, asserted on the synthesized template."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from slimserve.infra.access_logs import REST_API_FIELDS
from slimserve.infra.image import base_image
from slimserve.infra.options import OptionsError
from slimserve.infra.rest_api import INFER_PATHS, PROXY_PATHS

Synth = Callable[..., Any]


# --- REST API -----------------------------------------------------------------------------------


@pytest.fixture()
def rest_api_key(synth: Synth) -> Any:
    return synth(
        {
            "api": "rest",
            "auth": "api_key",
            "api_keys": ["alice", "bob"],
            "usage_plan_rate_limit": 5,
            "usage_plan_burst_limit": 7,
            "usage_plan_quota_per_day": 1234,
        }
    )


def test_rest_api_keys_with_a_per_key_usage_plan(rest_api_key: Any) -> None:
    template = rest_api_key.template
    template.resource_count_is("AWS::ApiGatewayV2::Api", 0)
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {
            "Name": "slimserve-digits",
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "BinaryMediaTypes": ["*/*", "application/octet-stream"],
        },
    )
    template.resource_count_is("AWS::ApiGateway::ApiKey", 2)
    template.has_resource_properties("AWS::ApiGateway::ApiKey", {"Name": "slimserve-digits-alice"})
    template.resource_count_is("AWS::ApiGateway::UsagePlanKey", 2)
    template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": 5, "BurstLimit": 7},
            "Quota": {"Limit": 1234, "Period": "DAY"},
            "ApiStages": [Match.object_like({"Stage": Match.any_value()})],
        },
    )
    for method in rest_api_key.resources("AWS::ApiGateway::Method").values():
        assert method["Properties"]["ApiKeyRequired"] is True
    outputs = rest_api_key.template_json["Outputs"]
    assert outputs["ApiKeyId1"]["Description"].startswith("API key 'alice': ")
    assert outputs["ApiKeyId2"]["Description"].startswith("API key 'bob': ")
    assert "InvokeResourceArn" not in outputs


def test_rest_stage_is_throttled_logged_traced_and_never_logs_bodies(rest_api_key: Any) -> None:
    stage = rest_api_key.only("AWS::ApiGateway::Stage")["Properties"]
    assert stage["StageName"] == "prod"
    assert stage["TracingEnabled"] is True
    assert stage["MethodSettings"] == [
        {
            "DataTraceEnabled": False,
            "HttpMethod": "*",
            "LoggingLevel": "ERROR",
            "MetricsEnabled": True,
            "ResourcePath": "/*",
            "ThrottlingBurstLimit": 100,
            "ThrottlingRateLimit": 50,
        }
    ]
    assert json.loads(stage["AccessLogSetting"]["Format"]) == REST_API_FIELDS
    # Stage/method logging needs API Gateway's account-level CloudWatch role.
    rest_api_key.template.resource_count_is("AWS::ApiGateway::Account", 1)
    # ...and the execution log group, created up front so that it has a retention.
    (stage_id,) = rest_api_key.resources("AWS::ApiGateway::Stage")
    (api_id,) = rest_api_key.resources("AWS::ApiGateway::RestApi")
    log_groups = rest_api_key.resources("AWS::Logs::LogGroup")
    execution_logs = next(
        (k, v) for k, v in log_groups.items() if "LogGroupName" in v["Properties"]
    )
    assert execution_logs[1]["Properties"]["LogGroupName"] == {
        "Fn::Join": ["", ["API-Gateway-Execution-Logs_", {"Ref": api_id}, "/prod"]]
    }
    assert execution_logs[0] in rest_api_key.template_json["Resources"][stage_id]["DependsOn"]
    assert all(g["Properties"]["RetentionInDays"] == 30 for g in log_groups.values())


def test_rest_requests_are_validated_against_the_models_inputs(rest_api_key: Any) -> None:
    rest_api_key.template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator",
        {"ValidateRequestBody": True, "ValidateRequestParameters": True},
    )
    model = rest_api_key.only("AWS::ApiGateway::Model")["Properties"]
    schema = model["Schema"]
    assert model["ContentType"] == "application/json"
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["required"] == ["inputs"]
    inputs = schema["properties"]["inputs"]
    assert inputs["maxItems"] == 1
    assert inputs["items"]["properties"]["name"]["enum"] == ["pixels"]
    assert schema["properties"]["outputs"]["items"]["properties"]["name"]["enum"] == ["logits"]

    methods = list(rest_api_key.resources("AWS::ApiGateway::Method").values())
    assert len(methods) == len(PROXY_PATHS) + len(INFER_PATHS)
    posts = [m["Properties"] for m in methods if m["Properties"]["HttpMethod"] == "POST"]
    assert len(posts) == len(INFER_PATHS)
    for post in posts:
        assert set(post["RequestModels"]) == {"application/json"}
        assert post["RequestParameters"]["method.request.path.model_name"] is True
    for method in methods:
        assert "RequestValidatorId" in method["Properties"]
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"


def test_rest_api_invokes_the_alias_through_one_permission(rest_api_key: Any) -> None:
    permission = rest_api_key.only("AWS::Lambda::Permission")["Properties"]
    (alias_id,) = rest_api_key.resources("AWS::Lambda::Alias")
    assert permission["FunctionName"] == {"Ref": alias_id}
    assert permission["SourceArn"]["Fn::Join"][1][-1] == "/*/*/*"


def test_rest_iam_auth_is_the_rest_default(synth: Synth) -> None:
    result = synth({"api": "rest"})
    for method in result.resources("AWS::ApiGateway::Method").values():
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
        assert method["Properties"].get("ApiKeyRequired") in (None, False)
    result.template.resource_count_is("AWS::ApiGateway::UsagePlan", 0)
    result.template.resource_count_is("AWS::WAFv2::WebACL", 0)


def test_rest_api_alarms_use_literal_dimensions(synth: Synth) -> None:
    # Refs to the stage would close a cycle: alias -> CodeDeploy -> alarm -> stage -> alias.
    result = synth({"api": "rest"})
    alarm = next(
        a["Properties"]
        for a in result.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "5XXError"
    )
    assert alarm["Dimensions"] == [
        {"Name": "ApiName", "Value": "slimserve-digits"},
        {"Name": "Stage", "Value": "prod"},
    ]


def test_waf_protects_the_rest_stage(synth: Synth) -> None:
    result = synth({"api": "rest", "waf": True})
    acl = result.only("AWS::WAFv2::WebACL")["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in acl["Rules"]}
    assert set(rules) == {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
        "RateLimitPerIp",
    }
    common = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert common["RuleActionOverrides"] == [
        {"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}
    ]
    association = result.only("AWS::WAFv2::WebACLAssociation")["Properties"]
    (stage_id,) = result.resources("AWS::ApiGateway::Stage")
    assert {"Ref": stage_id} in association["ResourceArn"]["Fn::Join"][1]


# --- HTTP API auth ------------------------------------------------------------------------------


def test_jwt_authorizer_on_the_http_route(synth: Synth) -> None:
    result = synth(
        {"auth": "jwt", "jwt_issuer": "https://issuer.example.com/", "jwt_audience": ["api://x"]}
    )
    result.template.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {
            "AuthorizerType": "JWT",
            "JwtConfiguration": {"Issuer": "https://issuer.example.com/", "Audience": ["api://x"]},
            "IdentitySource": ["$request.header.Authorization"],
        },
    )
    result.template.has_resource_properties(
        "AWS::ApiGatewayV2::Route", {"AuthorizationType": "JWT"}
    )


ANONYMOUS = {"auth": "none", "allow_anonymous": True, "reserved_concurrency": 5}


@pytest.mark.parametrize("api", ["http", "rest"])
def test_anonymous_access_is_explicit_and_warned_about(synth: Synth, api: str) -> None:
    result = synth({"api": api, **ANONYMOUS})
    result.template.has_resource_properties(
        "AWS::Lambda::Function", {"ReservedConcurrentExecutions": 5}
    )
    if api == "http":
        result.template.has_resource_properties(
            "AWS::ApiGatewayV2::Route", {"AuthorizationType": "NONE"}
        )
    else:
        for method in result.resources("AWS::ApiGateway::Method").values():
            assert method["Properties"]["AuthorizationType"] == "NONE"
    warnings = [
        (violation["ruleName"], violation["description"])
        for plugin in result.report["pluginReports"]
        for violation in plugin["violations"]
        if violation["severity"] == "warning"
    ]
    assert warnings == [
        (
            "Annotation::slimserve:anonymous-api",
            (
                f"auth=none: the {api.upper()} API accepts anonymous requests; anyone who finds "
                "the URL can run (and pay for) inference."
            ),
        )
    ]


def test_authenticated_apis_carry_no_warning(synth: Synth) -> None:
    assert synth().open_findings() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"auth": "none"},
            "auth=none needs allow_anonymous=true: anyone who finds the URL can run (and pay for) "
            "inference, so anonymous access must be acknowledged explicitly",
        ),
        (
            {"auth": "none", "allow_anonymous": True},
            "auth=none needs reserved_concurrency=<N>: a ceiling on the executions (and the "
            "cost) anonymous callers can cause",
        ),
        (
            {"auth": "none", "allow_anonymous": True, "reserved_concurrency": "off"},
            "auth=none needs reserved_concurrency=<N>: a ceiling on the executions (and the "
            "cost) anonymous callers can cause",
        ),
    ],
)
def test_anonymous_access_without_its_acknowledgment_does_not_synthesize(
    synth: Synth, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(OptionsError) as exc_info:
        synth(options)
    assert str(exc_info.value) == message
    assert "\n" not in message


# --- Lambda options -----------------------------------------------------------------------------


def test_provisioned_concurrency_instead_of_snapstart(synth: Synth) -> None:
    result = synth({"provisioned_concurrency": 3, "reserved_concurrency": 10})
    result.template.has_resource_properties(
        "AWS::Lambda::Function",
        {"SnapStart": Match.absent(), "ReservedConcurrentExecutions": 10},
    )
    result.template.has_resource_properties(
        "AWS::Lambda::Alias",
        {"ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 3}},
    )


def test_snapstart_can_be_switched_off(synth: Synth) -> None:
    result = synth({"snapstart": False})
    result.template.has_resource_properties("AWS::Lambda::Function", {"SnapStart": Match.absent()})


def test_no_snapstart_on_python_311(synth: Synth) -> None:
    result = synth(python="3.11")
    result.template.has_resource_properties(
        "AWS::Lambda::Function", {"Runtime": "python3.11", "SnapStart": Match.absent()}
    )


@pytest.mark.parametrize(
    ("rollout", "config_name"),
    [
        ("linear", "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"),
        ("all_at_once", "CodeDeployDefault.LambdaAllAtOnce"),
    ],
)
def test_rollout_choices(synth: Synth, rollout: str, config_name: str) -> None:
    result = synth({"rollout": rollout})
    result.template.has_resource_properties(
        "AWS::CodeDeploy::DeploymentGroup", {"DeploymentConfigName": config_name}
    )


def test_throttling_and_retention_options(synth: Synth) -> None:
    result = synth(
        {"throttle_rate_limit": 7.5, "throttle_burst_limit": 9, "log_retention_days": 365}
    )
    stage = result.only("AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 7.5
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 9
    for log_group in result.resources("AWS::Logs::LogGroup").values():
        assert log_group["Properties"]["RetentionInDays"] == 365


def test_a_timeout_api_gateway_would_cut_off_does_not_synthesize(synth: Synth) -> None:
    with pytest.raises(OptionsError, match=r"^manifest runtime\.timeout_s must be at most 28 s"):
        synth(timeout_s=29)


# --- package=s3 ---------------------------------------------------------------------------------


@pytest.fixture()
def s3_package(synth: Synth) -> Any:
    return synth({"package": "s3"})


def _model_bucket_id(result: Any) -> str:
    return next(k for k in result.resources("AWS::S3::Bucket") if k.startswith("ModelStoreBucket"))


def _model_key(result: Any) -> str:
    key = result.stack.model_store.key
    sha256 = result.stack.settings.model_sha256
    assert key.startswith(f"models/{sha256}/") and key.endswith(".onnx")
    return key



def test_s3_model_bucket_is_versioned_encrypted_private_and_logged(s3_package: Any) -> None:
    model_bucket_id = _model_bucket_id(s3_package)
    model_bucket = s3_package.resources("AWS::S3::Bucket")[model_bucket_id]
    properties = model_bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    }
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "DestinationBucketName" in properties["LoggingConfiguration"]
    assert model_bucket["DeletionPolicy"] == "Retain"
    # Pinned object versions never expire (a write to the key would make one noncurrent).
    (rule,) = properties["LifecycleConfiguration"]["Rules"]
    assert "NoncurrentVersionExpiration" not in rule and "ExpirationInDays" not in rule


def test_s3_bucket_policy_lets_only_the_upload_write_and_no_one_delete(s3_package: Any) -> None:
    model_bucket_id = _model_bucket_id(s3_package)
    policy = next(
        p["Properties"]["PolicyDocument"]
        for p in s3_package.resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": model_bucket_id}
    )
    statements = {statement.get("Sid", "tls"): statement for statement in policy["Statement"]}
    assert statements["tls"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    objects = {"Fn::Join": ["", [{"Fn::GetAtt": [model_bucket_id, "Arn"]}, "/*"]]}
    upload_role_id = next(k for k in s3_package.resources("AWS::IAM::Role") if k.startswith("ModelStoreUploadRole"))
    writes = statements["OnlyTheUploadWritesModels"]
    assert (writes["Effect"], writes["Principal"], writes["Resource"]) == ("Deny", {"AWS": "*"}, objects)
    assert "s3:PutObject" in writes["Action"]
    assert writes["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": [upload_role_id, "Arn"]}}
    }
    deletes = statements["NoOneDeletesModels"]
    assert (deletes["Effect"], deletes["Principal"], deletes["Resource"]) == ("Deny", {"AWS": "*"}, objects)
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion"} <= set(deletes["Action"])
    assert "Condition" not in deletes


def test_s3_model_version_is_pinned_in_the_functions_environment(s3_package: Any) -> None:
    sha256 = s3_package.stack.settings.model_sha256
    function = s3_package.inference_function()
    variables = function["Properties"]["Environment"]["Variables"]
    upload_id = next(
        k
        for k, v in s3_package.template_json["Resources"].items()
        if v["Type"] == "Custom::CDKBucketDeployment"
    )
    assert variables == {
        "SLIMSERVE_THREADS": "1",
        "SLIMSERVE_MODEL_S3_BUCKET": {"Ref": _model_bucket_id(s3_package)},
        "SLIMSERVE_MODEL_S3_KEY": _model_key(s3_package),
        "SLIMSERVE_MODEL_S3_SHA256": sha256,
        # The VersionId the upload wrote, as BucketDeployment reports it.
        "SLIMSERVE_MODEL_S3_VERSION": {
            "Fn::Select": [0, {"Fn::GetAtt": [upload_id, "SourceObjectVersionIds"]}]
        },
    }
    # The model must be uploaded before a version is published (SnapStart runs init then):
    # the GetAtt above orders it, so no DependsOn repeats it (cfn-lint W3005).
    assert upload_id not in function.get("DependsOn", [])


def test_s3_function_may_read_exactly_the_pinned_object_version(s3_package: Any) -> None:
    role_id = s3_package.inference_function()["Properties"]["Role"]["Fn::GetAtt"][0]
    s3_statements = [
        s for s in s3_package.role_statements(role_id) if "s3:" in json.dumps(s["Action"])
    ]
    assert s3_statements == [
        {
            "Action": "s3:GetObjectVersion",
            "Effect": "Allow",
            "Resource": {
                "Fn::Join": [
                    "",
                    [{"Fn::GetAtt": [_model_bucket_id(s3_package), "Arn"]}, f"/{_model_key(s3_package)}"],
                ]
            },
        }
    ]


def test_s3_upload_role_can_write_only_the_one_model_object(s3_package: Any) -> None:
    upload_role_id = next(
        k for k in s3_package.resources("AWS::IAM::Role") if k.startswith("ModelStoreUploadRole")
    )
    role = s3_package.template_json["Resources"][upload_role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    statements = s3_package.role_statements(upload_role_id)
    by_action = {json.dumps(statement["Action"]): statement for statement in statements}
    bucket_arn = {"Fn::GetAtt": [_model_bucket_id(s3_package), "Arn"]}
    model_object = {"Fn::Join": ["", [bucket_arn, f"/{_model_key(s3_package)}"]]}
    assert by_action[json.dumps(["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"])][
        "Resource"
    ] == model_object
    listing = by_action[json.dumps("s3:ListBucket")]
    assert listing["Resource"] == bucket_arn
    sha256 = s3_package.stack.settings.model_sha256
    assert listing["Condition"] == {"StringLike": {"s3:prefix": f"models/{sha256}/*"}}
    asset_read = by_action[json.dumps("s3:GetObject")]["Resource"]
    assert "cdk-hnb659fds-assets-" in json.dumps(asset_read)
    assert json.dumps(asset_read).endswith('.onnx"]]}')  # one asset object, not the bucket
    assert not [s for s in statements if "Delete" in json.dumps(s["Action"])]


def test_s3_upload_keeps_older_models_and_reports_the_version(s3_package: Any) -> None:
    upload = next(
        v["Properties"]
        for v in s3_package.template_json["Resources"].values()
        if v["Type"] == "Custom::CDKBucketDeployment"
    )
    assert upload["Prune"] is False
    assert upload["RetainOnDelete"] is True
    assert upload["Extract"] is False
    assert upload["OutputObjectVersionIds"] is True
    sha256 = s3_package.stack.settings.model_sha256
    assert upload["DestinationBucketKeyPrefix"] == f"models/{sha256}/"


def test_s3_uploads_only_the_model_file_as_is(s3_package: Any, tmp_path: Path) -> None:
    assembly = s3_package.template_path.parent
    assets = json.loads(next(assembly.glob("*.assets.json")).read_text(encoding="utf-8"))
    (model_asset,) = [
        asset
        for asset in assets["files"].values()
        if asset["displayName"] == "ModelStore/ModelAsset"
    ]
    assert model_asset["source"]["packaging"] == "file"
    staged = assembly / model_asset["source"]["path"]
    assert staged.read_bytes() == (tmp_path / "dist" / "digits" / "model.onnx").read_bytes()
    (destination,) = model_asset["destinations"].values()
    assert _model_key(s3_package).endswith("/" + destination["objectKey"])


# --- package=image ------------------------------------------------------------------------------


def test_image_package_is_a_docker_image_function_built_at_deploy(
    synth: Synth, tmp_path: Any
) -> None:
    result = synth({"package": "image"}, architecture="arm64", python="3.13")
    function = result.inference_function()["Properties"]
    assert function["PackageType"] == "Image"
    assert function["Architectures"] == ["arm64"]
    assert "SnapStart" not in function and "Runtime" not in function and "Handler" not in function
    assert "cdk-hnb659fds-container-assets" in json.dumps(function["Code"]["ImageUri"])

    dockerfile = (tmp_path / "dist" / "digits" / "Dockerfile").read_text()
    assert dockerfile.splitlines()[1] == f"FROM {base_image('3.13', 'arm64')}"
    assert 'CMD ["slimserve.handler.main.handler"]' in dockerfile

    # Synth staged the build context (Dockerfile + lambda.zip only) and built nothing.
    assets = json.loads(
        next(result.template_path.parent.glob("*.assets.json")).read_text(encoding="utf-8")
    )
    (image,) = assets["dockerImages"].values()
    assert image["source"]["platform"] == "linux/arm64"
    context = result.template_path.parent / image["source"]["directory"]
    assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "lambda.zip"]
