"""slimserve deploy for real, offline: the digits stack on the AWS emulator (LocalStack on the
host, functions run by slimserve's own runner), end to end, as a user runs it.

First a small function checks the executor's Lambda semantics. Then one stack, in order (the
tests of this module depend on that order): v1 as a REST API from lambda.zip, v2 with
``package=s3`` as an update (a new version, the model object in S3), rollbacks, destroy. Both builds are signed and every
deploy verifies the signature. What the emulator cannot show (IAM enforcement, the HTTP API,
CodeDeploy, alarm states) stays with the template tests and ``slimserve local``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulatorkit import Emulator
from repo import EXAMPLES_DIR

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("aws-emulator")]

STACK = "slimserve-digits"
REQUEST = json.loads((EXAMPLES_DIR / "digits" / "request.json").read_text())
# Resource types LocalStack community records without creating anything (physical id
# "unknown", "deployed as a fallback"); everything else must really exist.
PLACEHOLDER_TYPES = {"AWS::CodeDeploy::Application", "AWS::CodeDeploy::DeploymentGroup"}
ZIP_MANIFEST = "model/manifest.json"


@dataclass
class Deployed:
    template: dict[str, Any]
    resources: dict[str, dict[str, Any]]  # logical id -> CloudFormation's StackResource
    api: str  # base URL of the REST API's prod stage on the emulator


@dataclass(frozen=True)
class Keys:
    private: Path
    public: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = tmp_path_factory.mktemp("keys")
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "model.key", folder / "model.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return Keys(private, public)


def rebuild_as_version(source: Path, target: Path, version: str) -> Path:
    """A new build of the same model with another manifest version: the manifest beside the
    zip and the one inside it, nothing else (what `slimserve build` makes after a version bump)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("cdk.out", "model.sig", "work"))
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = version
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (target / "manifest.json").write_text(text)
    rebuilt = target / "lambda.new.zip"
    with zipfile.ZipFile(source / "lambda.zip") as old, zipfile.ZipFile(rebuilt, "w") as new:
        for info in old.infolist():
            new.writestr(info, text if info.filename == ZIP_MANIFEST else old.read(info.filename))
    rebuilt.replace(target / "lambda.zip")
    return target


@pytest.fixture(scope="module")
def builds(digits_build: Path, keys: Keys, tmp_path_factory: pytest.TempPathFactory, emulator: Emulator) -> dict[str, Path]:
    """v1 (the digits build) and v2, each signed with the test key."""
    from slimserve.build.deploy.signing import sign_bundle
    from slimserve.handler.manifest import load_manifest

    root = tmp_path_factory.mktemp("builds")
    v1 = shutil.copytree(digits_build, root / "v1", ignore=shutil.ignore_patterns("cdk.out", "model.sig", "work"))
    v2 = rebuild_as_version(v1, root / "v2", "2")
    for folder in (v1, v2):
        sign_bundle(folder, load_manifest(folder / "manifest.json"), keys.private)
    return {"1": v1, "2": v2}


def read_stack(emulator: Emulator, template_path: Path) -> Deployed:
    cloudformation = emulator.client("cloudformation")
    listed = cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]
    resources = {r["LogicalResourceId"]: r for r in listed}
    api_ids = [r["PhysicalResourceId"] for r in listed if r["ResourceType"] == "AWS::ApiGateway::RestApi"]
    assert len(api_ids) == 1, api_ids
    return Deployed(
        template=json.loads(template_path.read_text()),
        resources=resources,
        api=f"{emulator.endpoint}/_aws/execute-api/{api_ids[0]}/prod",
    )


def deploy(emulator: Emulator, build: Path, keys: Keys, *options: str) -> Deployed:
    result = emulator.slimserve("deploy", build, "--api", "rest", *options, "--verify-key", keys.public, "--yes")
    assert f"signature verified against {keys.public}" in result.stderr
    return read_stack(emulator, build / "cdk.out" / f"{STACK}.template.json")


def assert_every_resource_created(deployed: Deployed, *, earlier_versions: int = 0) -> None:
    """Every logical id of the template is a stack resource, complete and real (only the
    CodeDeploy pair are placeholders). Beyond them, only the function versions earlier deploys
    published: DeletionPolicy Retain keeps them, and LocalStack keeps listing them."""
    wanted = {logical_id: r["Type"] for logical_id, r in deployed.template["Resources"].items()}
    assert sorted(set(wanted) - set(deployed.resources)) == [], "template resources not created"
    extra = {k: r["ResourceType"] for k, r in deployed.resources.items() if k not in wanted}
    assert list(extra.values()) == ["AWS::Lambda::Version"] * earlier_versions, extra
    current = {k: r for k, r in deployed.resources.items() if k in wanted}
    incomplete = {k: r["ResourceStatus"] for k, r in current.items() if not r["ResourceStatus"].endswith("_COMPLETE")}
    assert not incomplete
    placeholders = {wanted[k] for k, r in current.items() if r["PhysicalResourceId"] == "unknown"}
    assert placeholders == PLACEHOLDER_TYPES


def infer(api: str, body: bytes, headers: dict[str, str], path: str = "/v2/models/digits/infer") -> httpx.Response:
    return httpx.post(api + path, content=body, headers=headers, timeout=120)


def binary_request() -> tuple[bytes, dict[str, str]]:
    """The example request in the binary tensor extension: JSON header, then raw FP32."""
    tensor = REQUEST["inputs"][0]
    raw = struct.pack(f"<{len(tensor['data'])}f", *tensor["data"])
    header = json.dumps(
        {
            "inputs": [{**{k: tensor[k] for k in ("name", "shape", "datatype")}, "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
            "parameters": REQUEST["parameters"],  # top_k, as in the JSON request
        }
    ).encode()
    headers = {"content-type": "application/octet-stream", "inference-header-content-length": str(len(header))}
    return header + raw, headers


def labels(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    document = response.json() if response.headers["content-type"].startswith("application/json") else None
    if document is None:  # binary response: the JSON header comes first
        length = int(response.headers["inference-header-content-length"])
        document = json.loads(response.content[:length])
    return next(output["data"] for output in document["outputs"] if output["name"] == "label")


def model_info(api: str) -> dict[str, str]:
    response = httpx.get(f"{api}/v2/models/digits", timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["parameters"]["model"]


# --- the executor: Lambda's semantics for any zip function ---------------------------------------

FUNCTION_CODE = """
import os, time
if os.environ.get("FAIL_AT_INIT"):
    raise RuntimeError("broken at init")
def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("boom")
    return {"request_id": context.aws_request_id, "arn": context.invoked_function_arn,
            "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"], "memory": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
            "region": os.environ["AWS_REGION"], "mine": os.environ.get("MINE"), "endpoint": os.environ.get("AWS_ENDPOINT_URL")}
"""


def test_the_executor_runs_a_function_as_lambda_does(emulator: Emulator) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as code:
        code.writestr("app.py", FUNCTION_CODE)
    lambda_ = emulator.client("lambda")
    name = "executor-check"
    lambda_.create_function(
        FunctionName=name, Runtime="python3.12", Handler="app.handler", Role="arn:aws:iam::000000000000:role/check",
        Code={"ZipFile": archive.getvalue()}, Timeout=1, MemorySize=256, Environment={"Variables": {"MINE": "yes"}},
    )
    try:
        lambda_.get_waiter("function_active_v2").wait(FunctionName=name)

        def invoke(event: dict[str, Any]) -> tuple[dict[str, Any], str | None, Any]:
            answer = lambda_.invoke(FunctionName=name, Payload=json.dumps(event).encode())
            return answer["ResponseMetadata"], answer.get("FunctionError"), json.loads(answer["Payload"].read())

        metadata, error, body = invoke({})
        assert error is None
        # The caller's request id reaches the handler (context.aws_request_id), as on Lambda.
        assert body["request_id"] == metadata["HTTPHeaders"]["x-amzn-requestid"]
        assert body["arn"].endswith(f":function:{name}") or body["arn"].endswith(f":function:{name}:$LATEST")
        assert (body["version"], body["memory"], body["region"], body["mine"]) == ("$LATEST", "256", "us-east-1", "yes")
        assert body["endpoint"].startswith("http://127.0.0.1:")  # boto3 in the function reaches the emulator
        _, error, body = invoke({"fail": True})
        assert (error, body["errorType"], body["errorMessage"]) == ("Unhandled", "ValueError", "boom")
        _, error, body = invoke({"sleep": 3})
        assert (error, body["errorType"]) == ("Unhandled", "Sandbox.Timedout")
        assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")
        assert invoke({})[1] is None  # a fresh environment after the timeout

        lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": {"FAIL_AT_INIT": "1"}})
        lambda_.get_waiter("function_updated_v2").wait(FunctionName=name)
        _, error, body = invoke({})
        # The runtime's own init error document, as Lambda returns it.
        assert (error, body["errorType"], body["errorMessage"]) == ("Unhandled", "RuntimeError", "broken at init")
    finally:
        lambda_.delete_function(FunctionName=name)


# --- v1: REST API, model in lambda.zip ----------------------------------------------------------


@pytest.fixture(scope="module")
def v1(emulator: Emulator, builds: dict[str, Path], keys: Keys) -> Deployed:
    return deploy(emulator, builds["1"], keys)


def test_cloudformation_creates_every_resource_of_the_template(v1: Deployed) -> None:
    assert_every_resource_created(v1)


def test_the_deployed_api_answers_v2_requests(v1: Deployed, builds: dict[str, Path]) -> None:
    expected = ["4", "0", "1"]  # what the example request's three digits are
    json_headers = {"content-type": "application/json"}
    assert labels(infer(v1.api, json.dumps(REQUEST).encode(), json_headers)) == expected
    body, headers = binary_request()
    assert labels(infer(v1.api, body, headers)) == expected
    # The REST API's request validator (JSON schema of the model) answers bad bodies itself.
    bad = infer(v1.api, b'{"inputs": "nope"}', json_headers)
    assert (bad.status_code, bad.json()) == (400, {"message": "Invalid request body"})
    unknown = httpx.get(f"{v1.api}/v2/nope", timeout=60)
    assert (unknown.status_code, unknown.json()) == (404, {"error": "no route for GET /v2/nope"})
    manifest = json.loads((builds["1"] / "manifest.json").read_text())
    assert model_info(v1.api) == {"version": "1", "sha256": manifest["model"]["sha256"]}


# --- v2: package=s3, as an update of the same stack ----------------------------------------------


@pytest.fixture(scope="module")
def v2(v1: Deployed, emulator: Emulator, builds: dict[str, Path], keys: Keys) -> Deployed:
    return deploy(emulator, builds["2"], keys, "--package", "s3")


def model_object(emulator: Emulator) -> tuple[str, str, str]:
    """(bucket, key, version id) the live function is pinned to."""
    lambda_ = emulator.client("lambda")
    alias = lambda_.get_alias(FunctionName=function_name(emulator), Name="live")
    variables = lambda_.get_function_configuration(
        FunctionName=function_name(emulator), Qualifier=alias["FunctionVersion"]
    )["Environment"]["Variables"]
    return variables["SLIMSERVE_MODEL_S3_BUCKET"], variables["SLIMSERVE_MODEL_S3_KEY"], variables["SLIMSERVE_MODEL_S3_VERSION"]


def function_name(emulator: Emulator) -> str:
    outputs = emulator.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    return next(o["OutputValue"] for o in outputs if o["OutputKey"] == "FunctionAlias").split(":")[6]


def test_package_s3_uploads_the_model_and_the_function_verifies_it(v2: Deployed, emulator: Emulator, builds: dict[str, Path]) -> None:
    assert_every_resource_created(v2, earlier_versions=1)
    bucket, key, version_id = model_object(emulator)
    stored = emulator.client("s3").get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
    manifest = json.loads((builds["2"] / "manifest.json").read_text())
    assert hashlib.sha256(stored).hexdigest() == manifest["model"]["sha256"]
    # Served by the new version, whose init downloaded and checked that object.
    assert labels(infer(v2.api, json.dumps(REQUEST).encode(), {"content-type": "application/json"})) == ["4", "0", "1"]
    assert model_info(v2.api) == {"version": "2", "sha256": manifest["model"]["sha256"]}


def test_a_tampered_model_object_makes_init_fail(v2: Deployed, emulator: Emulator) -> None:
    """Bytes in S3 that are not the pinned model: a fresh execution environment refuses them."""
    bucket, key, _ = model_object(emulator)
    s3, lambda_ = emulator.client("s3"), emulator.client("lambda")
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    tampered = s3.put_object(Bucket=bucket, Key=key, Body=bytes([original[0] ^ 1]) + original[1:])
    name = function_name(emulator)
    # $LATEST pointed at the tampered object version (a version nobody invoked yet: a cold start).
    variables = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lambda_.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**variables, "SLIMSERVE_MODEL_S3_VERSION": tampered["VersionId"]}}
    )
    lambda_.get_waiter("function_updated_v2").wait(FunctionName=name)
    answer = lambda_.invoke(FunctionName=name, Qualifier="$LATEST", Payload=b"{}")
    error = json.loads(answer["Payload"].read())
    assert answer.get("FunctionError") == "Unhandled"
    actual = hashlib.sha256(bytes([original[0] ^ 1]) + original[1:]).hexdigest()
    assert f"has sha256 {actual}, expected {hashlib.sha256(original).hexdigest()}: refusing to load it" in error["errorMessage"]


# --- versions and rollback ------------------------------------------------------------------------


def versions(emulator: Emulator, build: Path) -> dict[str, Any]:
    return json.loads(emulator.slimserve("versions", build, "--json").stdout)


def test_versions_and_rollback(v2: Deployed, emulator: Emulator, builds: dict[str, Path]) -> None:
    listed = versions(emulator, builds["2"])
    by_model = {v["model_version"]: v for v in listed["versions"]}
    assert set(by_model) == {"1", "2"}
    for model_version, build in builds.items():
        manifest = json.loads((build / "manifest.json").read_text())
        entry = by_model[model_version]
        assert entry["sha256"] == manifest["model"]["sha256"]
        assert entry["gate"] == {"metric": "accuracy", "value": pytest.approx(manifest["validation"]["candidate"], rel=1e-5), "passed": True}
        assert entry["built_at"] is not None
    assert listed["live"] == by_model["2"]["lambda_version"]
    assert by_model["2"]["live_weight"] == 1.0 and by_model["1"]["live_weight"] == 0.0

    rolled = emulator.slimserve("rollback", builds["2"])  # default: the version before live
    assert f"live now points at version {by_model['1']['lambda_version']}" in rolled.stderr
    assert "without the canary" in rolled.stderr  # CodeDeploy is a placeholder on the emulator
    assert versions(emulator, builds["2"])["live"] == by_model["1"]["lambda_version"]
    assert model_info(v2.api)["version"] == "1"
    assert infer(v2.api, json.dumps(REQUEST).encode(), {"content-type": "application/json"}).json()["model_version"] == "1"

    # v2's model object gone: rolling forward to it is refused, live stays on v1.
    bucket, key, version_id = json_model_object(by_model["2"]["model_object"])
    emulator.client("s3").delete_object(Bucket=bucket, Key=key, VersionId=version_id)
    refused = emulator.slimserve("rollback", builds["2"], "--to", by_model["2"]["lambda_version"], check=False)
    assert refused.returncode == 2
    assert "model artefact" in refused.stderr and "is gone" in refused.stderr
    assert versions(emulator, builds["2"])["live"] == by_model["1"]["lambda_version"]


def json_model_object(value: str) -> tuple[str, str, str]:
    location, _, version_id = value.removeprefix("s3://").partition("?versionId=")
    bucket, _, key = location.partition("/")
    return bucket, key, version_id


# --- destroy ----------------------------------------------------------------------------------------


def test_destroy_removes_the_stack(v2: Deployed, emulator: Emulator, builds: dict[str, Path]) -> None:
    from botocore.exceptions import ClientError

    emulator.slimserve("destroy", builds["2"], "--api", "rest", "--package", "s3", "--force")
    with pytest.raises(ClientError, match="does not exist"):
        emulator.client("cloudformation").describe_stacks(StackName=STACK)
    remaining = [f["FunctionName"] for f in emulator.client("lambda").list_functions()["Functions"]]
    assert not [name for name in remaining if name.startswith(STACK)]
