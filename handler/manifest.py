"""The manifest: the one contract between build/, handler/ and infra/.

It is written by the build beside the model (``manifest.json``), read by the handler at
import, and read by the CDK app. Fields are only ever added, never renamed; ``schema``
says which shape a file has. This is the one schema: the build validates with it and stamps the
file (``validated_sha256``); the handler reads a stamped file without pydantic
(handler/manifest_file.py) and validates with this module only a file without an intact stamp.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimserve.handler.manifest_file import (
    MANIFEST_FILE,
    MANIFEST_SCHEMA,
    STAMP_FIELD,
    ManifestError,
    read_manifest_json,
    stamp_of,
)

# MANIFEST_FILE, MANIFEST_SCHEMA and ManifestError live with the pydantic-free reader; every room
# imports them from here, with the schema.
__all__ = [
    "MANIFEST_FILE", "MANIFEST_SCHEMA", "Architecture", "Datatype", "Limits", "Manifest", "ManifestError", "ModelFile",
    "OnnxRuntimeOptions", "Runtime", "Sizes", "Task", "TensorSpec", "Validation", "load_manifest", "validate_manifest",
]

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


class OnnxRuntimeOptions(_Strict):
    """The onnxruntime session options a model is served with, beyond the handler's fixed ones
    (thread counts, sequential execution, no spinning): written by the build from the shipped
    model (build/gate/portability.py ``serving_options``), applied by handler/model.py, and the
    ones the gate's own sessions used. Manifests of older builds lack it: the defaults are what
    those handlers set."""

    graph_optimization_level: Literal["basic", "extended", "all"] = "basic"
    # Session config entries (``SessionOptions.add_session_config_entry``).
    config: dict[str, str] = Field(default_factory=dict)
    # More entries, set only on x86-64 CPUs without VNNI (handler/model.py
    # ``int8_kernels_can_saturate``), e.g. {"session.x64quantprecision": "1"}.
    config_without_vnni: dict[str, str] = Field(default_factory=dict)


class Runtime(_Strict):
    python: str = "3.12"
    architecture: Architecture = "x86_64"
    handler: str = "slimserve.handler.main.handler"
    memory_mb: int = 1024
    timeout_s: int = 20
    limits: Limits = Field(default_factory=Limits)
    onnxruntime: OnnxRuntimeOptions = Field(default_factory=OnnxRuntimeOptions)


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
    # Written by the build (build/pipeline/canary.py); absent in manifests of older builds.
    canary: Canary | None = None
    # sha256 of the canonical JSON of every other field, written by to_json (after validation):
    # the handler trusts a file whose stamp holds without validating it again.
    validated_sha256: str | None = None
    explain: Explain | None = None

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    def to_json(self) -> str:
        document = self.model_dump(mode="json", by_alias=True)
        document[STAMP_FIELD] = stamp_of(document)
        return json.dumps(document, indent=2, sort_keys=True) + "\n"


def validate_manifest(raw: dict[str, Any], path: Path) -> Manifest:
    """The schema's verdict on a manifest's JSON object; a ManifestError names the path."""
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError(f"manifest is invalid: {path}: {exc}") from exc


def load_manifest(path: Path) -> Manifest:
    """Read and validate ``manifest.json``; every failure is a ManifestError with the path."""
    return validate_manifest(read_manifest_json(path), path)
