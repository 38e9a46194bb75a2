"""What every benchmark section shares: the example under test, the request it sends, the
recorded API Gateway event shape that carries it, and a description of the machine."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.config import BuildConfig, load_config
from slimserve.build.paths import PACKAGE_ROOT
from slimserve.handler.manifest import MANIFEST_FILE, Manifest, load_manifest

PROJECT_ROOT = PACKAGE_ROOT
RECORDED_HTTP_EVENT = PROJECT_ROOT / "tests" / "events" / "http-api-v2.json"
# 16 tokens with [CLS] and [SEP] for all-MiniLM-L6-v2's tokenizer: the "1 x 16" request.
SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river."
SENTENCE_TOKENS = 16


@dataclass(frozen=True)
class Example:
    """One built example: its source folder and its build output folder."""

    folder: Path  # examples/<name> (slimserve.toml)
    dist: Path  # dist/<name> (model.onnx, manifest.json, lambda.zip, work/fp32.onnx)

    @cached_property
    def config(self) -> BuildConfig:
        return load_config(self.folder)

    @cached_property
    def manifest(self) -> Manifest:
        return load_manifest(self.dist / MANIFEST_FILE)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def is_text(self) -> bool:
        return self.manifest.task == "embedding"

    @property
    def zip_path(self) -> Path:
        return self.dist / "lambda.zip"

    @property
    def model_path(self) -> Path:
        return self.dist / self.manifest.model.file

    @property
    def fp32_path(self) -> Path:
        return self.dist / "work" / "fp32.onnx"

    @property
    def infer_path(self) -> str:
        return f"/v2/models/{self.name}/infer"

    @property
    def has_torch_source(self) -> bool:
        return self.config.source.module is not None


def infer_body(example: Example, batch: int = 1, seed: int = 0) -> bytes:
    """The V2 JSON request the suite sends: the example's own request.json for batch 1 when it
    has one, the benchmark sentence for text models, otherwise seeded random inputs."""
    request_file = example.folder / "request.json"
    if batch == 1 and request_file.is_file():
        return request_file.read_bytes()
    rng = np.random.default_rng(seed)
    inputs = []
    for spec in example.manifest.inputs:
        shape = [batch if axis == 0 and dim == -1 else (dim if dim > 0 else 16) for axis, dim in enumerate(spec.shape)]
        if spec.datatype == "BYTES":
            data: list[Any] = [SENTENCE] * int(np.prod(shape))
        elif spec.datatype.startswith("FP"):
            data = rng.random(int(np.prod(shape))).round(4).tolist()
        else:
            data = [1] * int(np.prod(shape))
        inputs.append({"name": spec.name, "shape": shape, "datatype": spec.datatype, "data": data})
    return json.dumps({"id": "bench", "inputs": inputs}).encode()


def http_api_event(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """A recorded API Gateway HTTP API (payload 2.0, ``$default`` stage) event carrying this
    request, filled the way the gateway fills it (as tests/eventkit.py does). ``base64_body``:
    HTTP API base64-encodes every body whose Content-Type is not text or JSON."""
    if RECORDED_HTTP_EVENT.is_file():
        event = json.loads(RECORDED_HTTP_EVENT.read_text(encoding="utf-8"))
    else:  # an installed copy without the tests folder: the local gateway's own event builder
        from slimserve.build.local.apigw.events import (
            HttpRequest,
            RouteMatch,
            build_http_api_v2_event,
        )

        event = build_http_api_v2_event(
            HttpRequest(method, path, "", []),
            RouteMatch("$default", path, {}),
            stage="$default",
            request_id="bench",
            trace_id="Root=1-00000000-000000000000000000000000",
            now_ms=0,
        )
    extra = {"content-type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
    if body is None:
        event["body"], event["isBase64Encoded"] = "", False
    elif base64_body:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
    else:
        event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
    event["rawPath"] = path
    event["rawQueryString"] = ""
    event.pop("queryStringParameters", None)
    event["requestContext"]["http"].update(method=method, path=path)
    event["headers"] = {**{key.lower(): value for key, value in event.get("headers", {}).items()}, **extra}
    return event


class LambdaContextStub:
    """The attributes of Lambda's context object that Mangum and Powertools read."""

    function_name = "slimserve-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:slimserve-bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/slimserve-bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def _version_of(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip()


def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"]
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return {
        "model": model,
        "int8_flags": [flag for flag in wanted if flag in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "machine": platform.machine(),
    }


def memory_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def machine_description(target_python: str | None = None) -> dict[str, Any]:
    """The machine and software the numbers come from."""
    status = _git("status", "--porcelain")
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "memory_total_bytes": memory_total_bytes(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "target_python": target_python,
        "packages": {
            name: _version_of(name)
            for name in ("onnxruntime", "torch", "numpy", "mangum", "fastapi", "tokenizers", "awslambdaric")
        },
        "git": {
            "commit": _git("rev-parse", "HEAD"),
            "uncommitted_changes": None if status is None else len([line for line in status.splitlines() if line]),
        },
        "load_average_at_start": load_average(),
    }
