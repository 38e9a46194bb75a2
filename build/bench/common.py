"""What every benchmark section shares: the example under test, the request it sends, and the
API Gateway event and Lambda context that carry it to the handler."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.config import BuildConfig, load_config
from slimserve.build.local.apigw.events import (
    HttpRequest,
    RouteMatch,
    build_http_api_v2_event,
    new_trace_id,
)
from slimserve.build.pipeline.huggingface import derive_config
from slimserve.handler.manifest import MANIFEST_FILE, Manifest, load_manifest

# 16 tokens with [CLS] and [SEP] for all-MiniLM-L6-v2's tokenizer: the "1 x 16" request.
SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river."


@dataclass(frozen=True)
class Example:
    """One built example: its source folder and its build output folder."""

    folder: Path  # examples/<name> (slimserve.toml)
    dist: Path  # dist/<name> (model.onnx, manifest.json, lambda.zip, work/fp32.onnx)

    @cached_property
    def config(self) -> BuildConfig:
        """slimserve.toml as the build read it (a Hugging Face folder's tokenizer, sequence
        length and labels filled in)."""
        return derive_config(load_config(self.folder))

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
        """A PyTorch original exists: ``source.module`` + weights or ``source.huggingface``."""
        source = self.config.source
        return source.module is not None or source.huggingface is not None

    def torch_original(self) -> tuple[Any, list[str]]:
        """The PyTorch model the build exported, loaded as the build loads it (the factory and
        its weights, or the Hugging Face folder offline through ``huggingface_torch.load_model``),
        in eval mode, and the names of its positional inputs in order."""
        source = self.config.source
        if source.huggingface is not None:
            from slimserve.build.pipeline import huggingface_torch

            model = huggingface_torch.load_model(self.config)
            return model, list(model.input_names)
        if source.module is None:
            raise ValueError(f"{self.name}: source.onnx has no PyTorch original")
        from slimserve.build.pipeline.source import load_torch_model

        assert self.config.export.inputs is not None  # required with source.module (config schema)
        return load_torch_model(self.config), [spec.name for spec in self.config.export.inputs]


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


def http_api_event(method: str, path: str, body: bytes = b"", *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The API Gateway HTTP API event (payload 2.0, ``$default`` stage) carrying this request,
    built by the local gateway's own event builder, so it has the shape `slimserve local` sends.
    A body is JSON unless ``headers`` say otherwise; as on HTTP API, a body whose Content-Type
    is not text or JSON arrives base64-encoded."""
    sent = {"content-type": "application/json"} if body else {}
    sent.update({name.lower(): value for name, value in (headers or {}).items()})
    return build_http_api_v2_event(
        HttpRequest(method, path, "", list(sent.items()), body),
        RouteMatch("$default", path, {}),
        stage="$default",
        request_id="bench",
        trace_id=new_trace_id(),
        now_ms=int(time.time() * 1000),
    )


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
