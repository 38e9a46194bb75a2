"""The manifest: the one contract between build/, handler/ and infra/.

It is written by the build beside the model (``manifest.json``), read by the handler at
import, and read by the CDK app. Fields are only ever added, never renamed; ``schema``
says which shape a file has. Keep this module dependency-light: the handler imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST_SCHEMA = 1
MANIFEST_FILE = "manifest.json"

# Open Inference Protocol datatypes (KServe v2). BYTES carries strings.
Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
Task = Literal["raw", "classification", "embedding"]
Architecture = Literal["x86_64", "arm64"]


class _Strict(BaseModel):
    # Unknown keys are kept (forward compatible readers), types are checked.
    model_config = ConfigDict(extra="allow", frozen=True)


class TensorSpec(_Strict):
    name: str = Field(description="the tensor's name in the model and the API")
    datatype: Datatype = Field(description="Open Inference Protocol datatype: BOOL, INT8-64, UINT8-64, FP16/32/64 or BYTES")
    shape: list[int] = Field(description="-1 marks a free dimension")


class ModelFile(_Strict):
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Validation(_Strict):
    metric: str
    reference: float
    candidate: float
    tolerance: float
    passed: bool
    samples: int
    # The output the gate scored (absent in manifests of older builds).
    output: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Sizes(_Strict):
    reference_bytes: int
    model_bytes: int


class Limits(_Strict):
    """Request limits the handler enforces (OWASP API4) and infra mirrors."""

    # 4 MiB: API Gateway hands binary bodies to Lambda base64-encoded (4 bytes per 3), so a body
    # at this limit arrives as 5,592,408 bytes and, with the event around it, stays under Lambda's
    # 6,291,456-byte synchronous payload: the client gets the handler's 413, never a gateway 5xx.
    # (5 MiB would arrive as 6,990,508 bytes.) infra/options.py enforces the bound for any value.
    max_body_bytes: int = Field(4 * 1024 * 1024, description="request body bytes (413 above)")
    max_batch: int = Field(64, description="rows per request (413 above)")
    max_elements: int = Field(1_000_000, description="elements per tensor (413 above)")
    max_text_chars: int = Field(10_000, description="characters per text (embedding)")
    max_tokens: int = Field(256, description="tokens per text after truncation (embedding)")


class Runtime(_Strict):
    python: str = "3.12"
    architecture: Architecture = "x86_64"
    handler: str = "slimserve.handler.main.handler"
    memory_mb: int = 1024
    timeout_s: int = 20
    limits: Limits = Field(default_factory=Limits)


class CanaryCheck(_Strict):
    """How a deployment's canary compares the new version's answers with the recorded ones.

    ``top1``: the index of the largest value of ``output`` must agree on at least ``threshold``
    of the samples (the gate's accuracy tolerance: 1 - tolerance). ``cosine``: every sample's
    ``output`` must reach cosine ``threshold`` with the recorded vector (the gate's min_cosine).
    """

    output: str
    metric: Literal["top1", "cosine"]
    threshold: float


class CanarySample(_Strict):
    """One held-out request (an Open Inference Protocol JSON body) and the shipped model's
    answer to it: the data of ``CanaryCheck.output``, flattened."""

    request: dict[str, Any]
    expected: list[float]


class Canary(_Strict):
    """Requests the deploy-time canary (infra's pre-traffic hook) replays against a new version."""

    check: CanaryCheck
    samples: list[CanarySample]


class Manifest(_Strict):
    schema_: int = Field(MANIFEST_SCHEMA, alias="schema")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    version: str = "1"
    task: Task = "raw"
    platform: Literal["onnx_onnxv1"] = "onnx_onnxv1"
    model: ModelFile
    # Other files the handler reads beside the model (e.g. tokenizer.json), name -> sha256.
    files: dict[str, str] = Field(default_factory=dict)
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str] | None = None
    task_options: dict[str, Any] = Field(default_factory=dict)
    compression: dict[str, Any] = Field(default_factory=dict)
    validation: Validation | None = None
    sizes: Sizes | None = None
    runtime: Runtime = Field(default_factory=Runtime)
    # Written by the build (build/pipeline/canary.py); absent in manifests of older builds.
    canary: Canary | None = None

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n"


class ManifestError(Exception):
    """The manifest is missing or does not match the schema."""


def load_manifest(path: Path) -> Manifest:
    """Read and validate ``manifest.json``; every failure is a ManifestError with the path."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"manifest not found: {path}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"manifest must be a JSON object: {path}")
    if raw.get("schema") != MANIFEST_SCHEMA:
        raise ManifestError(
            f"manifest schema {raw.get('schema')!r} is not supported (expected {MANIFEST_SCHEMA}): {path}"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError(f"manifest is invalid: {path}: {exc}") from exc
