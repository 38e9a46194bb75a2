"""Fetch the model from S3 (package=s3) and refuse it unless its sha256 matches the pin.

Used at import time in Lambda when SLIMSERVE_MODEL_S3_BUCKET / _KEY / _SHA256 are set (the
stack sets them). Only the standard library and boto3, which the Lambda Python runtime
provides; boto3 is imported on first use so a zip-packaged model never pays for it.

The function's role may read exactly one object and nothing else, so S3 reports a missing
key as AccessDenied (403) rather than NoSuchKey (404): the error says so.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
_NO_BUCKET_CODES = {"NoSuchBucket"}
_DENIED_CODES = {"403", "AccessDenied", "Forbidden"}


class S3ModelError(Exception):
    """The model object could not be fetched, or its bytes are not the pinned model."""


def fetch_model(
    bucket: str,
    key: str,
    sha256: str,
    dest: Path,
    *,
    version_id: str | None = None,
    client: Any | None = None,
) -> Path:
    """Download ``s3://bucket/key`` to ``dest`` and return ``dest`` once its sha256 matches.

    The bytes land in a temporary file beside ``dest`` and are renamed into place only after
    the hash check, so ``dest`` never holds an unverified or partial model. A ``dest`` that
    already holds the pinned bytes (a warm /tmp) is reused without downloading.
    ``client`` is a boto3 S3 client (default: ``boto3.client("s3")``).
    """
    if not _SHA256.match(sha256):
        raise S3ModelError(f"model sha256 pin must be 64 lowercase hex digits, got {sha256!r}")
    where = f"s3://{bucket}/{key}" + (f" (version {version_id})" if version_id else "")
    if dest.is_file() and _file_sha256(dest) == sha256:
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, partial_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    partial = Path(partial_name)
    try:
        _download(client, bucket, key, version_id, partial, where)
        actual = _file_sha256(partial)
        if actual != sha256:
            raise S3ModelError(
                f"model object {where} has sha256 {actual}, expected {sha256}: refusing to "
                "load it (the object was replaced or corrupted; redeploy to upload the model "
                "this function version was built with)"
            )
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def _download(
    client: Any, bucket: str, key: str, version_id: str | None, target: Path, where: str
) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    if client is None:
        import boto3

        client = boto3.client("s3")
    extra_args = {"VersionId": version_id} if version_id else None
    try:
        # download_file fetches large objects in parallel ranged GETs: faster cold starts.
        client.download_file(bucket, key, str(target), ExtraArgs=extra_args)
    except ClientError as exc:
        raise S3ModelError(_describe_client_error(exc, where)) from exc
    except BotoCoreError as exc:
        raise S3ModelError(f"could not download model object {where}: {exc}") from exc


def _describe_client_error(exc: Any, where: str) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code in _NOT_FOUND_CODES:
        return f"model object {where} does not exist"
    if code in _NO_BUCKET_CODES:
        return f"model bucket of {where} does not exist"
    if code in _DENIED_CODES:
        return (
            f"access to model object {where} denied: the object is missing, or the "
            "function's role may not read it (it is granted s3:GetObjectVersion on exactly the "
            "pinned version of the pinned key, so a missing object also shows as AccessDenied)"
        )
    return f"could not download model object {where}: {code or 'error'}: {exc}"


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
