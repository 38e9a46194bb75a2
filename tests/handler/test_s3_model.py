"""slimserve.handler.s3_model against a real S3 API: moto in server mode on 127.0.0.1 (no AWS)."""

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

from slimserve.handler.s3_model import S3ModelError, fetch_model

from repo import REPO_ROOT

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
    code = "import sys, json, slimserve.handler.s3_model; print(json.dumps('boto3' in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) is False


def _run_handler_main(model_dir: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); from eventkit import load_event; "
        "import slimserve.handler.main as main; "
        "result = main.asgi_handler(load_event('infer-digits.json'), None); "
        "print('RESULT ' + json.dumps(result))"
    )
    env = {**os.environ, "SLIMSERVE_MODEL_DIR": str(model_dir), "SLIMSERVE_THREADS": "1", **env_extra}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT
    )


@pytest.fixture()
def s3_model_dir(digits_build: Path, s3: Any, bucket: str, s3_endpoint: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A model dir with the manifest and the files it pins but not the model (as in a package=s3
    zip), and the model in S3."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "manifest.json").write_bytes((digits_build / "manifest.json").read_bytes())
    for name in json.loads((digits_build / "manifest.json").read_text())["files"]:
        (model_dir / name).write_bytes((digits_build / name).read_bytes())
    data = (digits_build / "model.onnx").read_bytes()
    key = f"models/{hashlib.sha256(data).hexdigest()}/model.onnx"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    env = {
        "SLIMSERVE_MODEL_S3_BUCKET": bucket,
        "SLIMSERVE_MODEL_S3_KEY": key,
        "SLIMSERVE_MODEL_S3_SHA256": hashlib.sha256(data).hexdigest(),
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "TMPDIR": str(tmp_path / "lambda-tmp"),
    }
    (tmp_path / "lambda-tmp").mkdir()
    return model_dir, env


def test_handler_loads_the_model_from_s3_at_init(s3_model_dir: tuple[Path, dict[str, str]]) -> None:
    model_dir, env = s3_model_dir
    completed = _run_handler_main(model_dir, env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.split("RESULT ", 1)[1])
    assert result["statusCode"] == 200
    assert {o["name"]: o for o in json.loads(result["body"])["outputs"]}["label"]["data"] == ["4"]
    assert (Path(env["TMPDIR"]) / "slimserve" / "model.onnx").is_file()


def test_handler_refuses_a_corrupted_s3_model_at_init(s3_model_dir: tuple[Path, dict[str, str]], s3: Any) -> None:
    model_dir, env = s3_model_dir
    s3.put_object(Bucket=env["SLIMSERVE_MODEL_S3_BUCKET"], Key=env["SLIMSERVE_MODEL_S3_KEY"], Body=b"tampered")
    completed = _run_handler_main(model_dir, env)
    assert completed.returncode != 0
    assert "ModelLoadError" in completed.stderr and "sha256" in completed.stderr


def test_handler_needs_all_three_s3_settings(s3_model_dir: tuple[Path, dict[str, str]]) -> None:
    from slimserve.handler.settings import Settings, SettingsError

    _, env = s3_model_dir
    partial = {k: v for k, v in env.items() if k != "SLIMSERVE_MODEL_S3_SHA256"}
    with pytest.raises(SettingsError, match=r"missing \['SLIMSERVE_MODEL_S3_SHA256'\]"):
        Settings.from_env(environ=partial)
    settings = Settings.from_env(environ=env)
    assert settings.model_s3 is not None and settings.model_s3.bucket == env["SLIMSERVE_MODEL_S3_BUCKET"]
