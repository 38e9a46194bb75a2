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
# How POST .../explain attributes an output to the input's parts (handler/explain/).
ExplainMethod = Literal["kernel-shap", "shapley-sampling", "leave-one-out"]
Architecture = Literal["x86_64", "arm64"]


class _Strict(BaseModel):
    # Unknown keys are kept (forward compatible readers), types are checked.
    model_config = ConfigDict(extra="allow", frozen=True)


class TensorSpec(_Strict):
    name: str
    datatype: Datatype
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
    extra: dict[str, Any] = Field(default_factory=dict)


class Sizes(_Strict):
    reference_bytes: int
    model_bytes: int


class Limits(_Strict):
    """Request limits the handler enforces (OWASP API4) and infra mirrors."""

    max_body_bytes: int = 5 * 1024 * 1024  # below Lambda's 6 MB synchronous payload
    max_batch: int = 64
    max_elements: int = 1_000_000
    max_text_chars: int = 10_000
    max_tokens: int = 256


class Runtime(_Strict):
    python: str = "3.12"
    architecture: Architecture = "x86_64"
    handler: str = "slimserve.handler.main.handler"
    memory_mb: int = 1024
    timeout_s: int = 20
    limits: Limits = Field(default_factory=Limits)


class Explain(_Strict):
    """What ``POST .../explain`` offers for this model (written by the build; see
    docs/explanations.md). ``methods[0]`` is the default method."""

    methods: list[ExplainMethod] = Field(min_length=1)
    # Coalitions evaluated per request (sampled modes): the default and the per-model maximum.
    samples: int = Field(1024, ge=2)
    max_samples: int = Field(8192, ge=2)
    # Features (or patches) up to which Kernel SHAP enumerates every coalition (exact).
    exact_max_players: int = Field(12, ge=1, le=16)
    # Tensor models: background rows (a .npy file pinned in ``files``) that stand in for the
    # features left out of a coalition.
    background: str | None = None
    # Image inputs: each row reshaped to ``image_shape`` (last two axes height, width) and
    # attributed by ``patch`` [height, width] superpixels.
    image_shape: list[int] | None = None
    patch: list[int] | None = None


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
    explain: Explain | None = None

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
