"""handler.s3_model against a real S3 API: moto in server mode on 127.0.0.1 (no AWS)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handler.s3_model import S3ModelError, fetch_model

MODEL = b"onnx model bytes " * 1000
MODEL_SHA256 = hashlib.sha256(MODEL).hexdigest()
KEY = f"models/{MODEL_SHA256}/model.onnx"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    # Dummy credentials for this test only: botocore signs requests even for moto.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    return client


@pytest.fixture()
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    # One bucket per test: the moto server lives for the module.
    name = "models-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:20]
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_downloads_and_verifies_the_pinned_model(s3: Any, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=MODEL)
    dest = tmp_path / "model" / "model.onnx"

    assert fetch_model(bucket, KEY, MODEL_SHA256, dest, client=s3) == dest

    assert dest.read_bytes() == MODEL
    assert [p.name for p in dest.parent.iterdir()] == ["model.onnx"]  # no partial files


def test_a_corrupted_object_is_refused_and_never_lands_at_dest(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=MODEL[:-1] + b"!")
    dest = tmp_path / "model.onnx"

    with pytest.raises(S3ModelError) as exc_info:
        fetch_model(bucket, KEY, MODEL_SHA256, dest, client=s3)

    message = str(exc_info.value)
    assert f"s3://{bucket}/{KEY}" in message
    assert f"expected {MODEL_SHA256}" in message and "refusing to load it" in message
    assert list(tmp_path.iterdir()) == []


def test_a_missing_object_is_a_clear_error(s3: Any, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(S3ModelError, match=r"^model object s3://\S+ does not exist$"):
        fetch_model(bucket, KEY, MODEL_SHA256, tmp_path / "model.onnx", client=s3)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_bucket_is_a_clear_error(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(S3ModelError, match="does not exist"):
        fetch_model("no-such-bucket-slimserve", KEY, MODEL_SHA256, tmp_path / "m.onnx", client=s3)


def test_a_pinned_version_is_fetched_even_after_the_key_is_overwritten(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    first = s3.put_object(Bucket=bucket, Key=KEY, Body=MODEL)
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"a newer, different model")
    dest = tmp_path / "model.onnx"

    fetch_model(bucket, KEY, MODEL_SHA256, dest, version_id=first["VersionId"], client=s3)

    assert dest.read_bytes() == MODEL
    with pytest.raises(S3ModelError, match="refusing to load it"):
        fetch_model(bucket, KEY, MODEL_SHA256, tmp_path / "latest.onnx", client=s3)


def test_an_unknown_version_is_a_clear_error(s3: Any, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=MODEL)
    with pytest.raises(S3ModelError, match=r"\(version 0123456789abcdef\)"):
        fetch_model(
            bucket, KEY, MODEL_SHA256, tmp_path / "m.onnx", version_id="0123456789abcdef", client=s3
        )


def test_a_dest_already_holding_the_pinned_bytes_is_reused_without_s3(tmp_path: Path) -> None:
    dest = tmp_path / "model.onnx"
    dest.write_bytes(MODEL)

    class NoS3:
        def download_file(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("must not download")

    assert fetch_model("bucket", KEY, MODEL_SHA256, dest, client=NoS3()) == dest


def test_a_stale_dest_is_replaced(s3: Any, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=MODEL)
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"an older model")

    fetch_model(bucket, KEY, MODEL_SHA256, dest, client=s3)

    assert dest.read_bytes() == MODEL


def test_a_denied_read_names_both_causes(tmp_path: Path) -> None:
    # A role with s3:GetObject on one key (no s3:ListBucket) sees a missing key as 403.
    from botocore.exceptions import ClientError

    class DeniedS3:
        def download_file(self, *args: object, **kwargs: object) -> None:
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")

    with pytest.raises(S3ModelError, match="denied: the object is missing, or the function's role"):
        fetch_model("bucket", KEY, MODEL_SHA256, tmp_path / "m.onnx", client=DeniedS3())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("pin", ["", "abc", MODEL_SHA256.upper(), MODEL_SHA256 + "0"])
def test_a_malformed_pin_is_rejected_before_any_download(pin: str, tmp_path: Path) -> None:
    with pytest.raises(S3ModelError, match="64 lowercase hex digits"):
        fetch_model("bucket", KEY, pin, tmp_path / "m.onnx", client=object())


def test_importing_the_module_does_not_import_boto3() -> None:
    # A zip-packaged model must not pay boto3's import time at cold start.
    code = "import sys, json, handler.s3_model; print(json.dumps('boto3' in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) is False
