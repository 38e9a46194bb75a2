"""``slimserve.toml``: the build configuration, validated at the boundary.

Every mistake becomes a ConfigError naming the file, the key and what is expected, before any
slow step runs. Paths in the file are relative to the example folder.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from handler.manifest import Architecture, Limits, Task, TensorSpec

CONFIG_FILE = "slimserve.toml"

CompressionMethod = Literal["none", "dynamic-int8", "static-int8", "fp16"]
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


class ConfigError(ValueError):
    """slimserve.toml is missing or wrong; the message says where and how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Section):
    # Either a PyTorch module + weights, or an existing ONNX file.
    module: str | None = None
    factory: str = "build_model"
    factory_kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = None
    train: str | None = Field(default=None, description="'file.py:function' run when weights are missing")
    onnx: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "SourceConfig":
        if self.onnx is None and self.module is None:
            raise ValueError("set either source.onnx (an .onnx file) or source.module + source.weights")
        if self.onnx is not None and self.module is not None:
            raise ValueError("set only one of source.onnx and source.module")
        if self.module is not None and self.weights is None:
            raise ValueError("source.module needs source.weights (a .safetensors file or a state dict .pt)")
        return self


class ExportConfig(_Section):
    opset: int = Field(17, ge=13, le=21)
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    # Extra keyword arguments for the model's forward in export (e.g. which outputs to return).
    dynamo: bool = False


class CompressionConfig(_Section):
    method: CompressionMethod = "dynamic-int8"
    per_channel: bool = True
    reduce_range: bool = False
    weight_type: Literal["int8", "uint8"] = "int8"
    nodes_to_exclude: list[str] = Field(default_factory=list)
    op_types_to_quantize: list[str] | None = None
    optimize: bool = True


class ValidationConfig(_Section):
    data: str = Field(description="'file.py:function' returning (inputs dict, labels)")
    # Calibration data for static quantization; must not overlap the held-out data.
    calibration: str | None = None
    metric: Literal["accuracy", "cosine"] = "accuracy"
    tolerance: float = Field(0.01, ge=0.0, le=1.0)
    # Classification: optionally also require the compressed model's top-1 to agree with the
    # original's on at least this fraction of samples (accuracy alone can hide flips).
    min_agreement: float | None = Field(None, ge=0.0, le=1.0)
    # Embedding gates (metric = "cosine"): both must hold.
    min_cosine: float = Field(0.95, ge=-1.0, le=1.0)
    mean_cosine: float = Field(0.99, ge=-1.0, le=1.0)
    batch_size: int = Field(32, ge=1, le=4096)


class RuntimeConfig(_Section):
    python: str = "3.12"
    architecture: Architecture = "x86_64"
    memory_mb: int = Field(1024, ge=128, le=10240)
    timeout_s: int = Field(20, ge=1, le=28)
    limits: Limits = Field(default_factory=Limits)
    extra_requirements: list[str] = Field(default_factory=list)

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if value not in SUPPORTED_PYTHONS:
            raise ValueError(f"runtime.python must be one of {list(SUPPORTED_PYTHONS)} (Lambda runtimes)")
        return value


class BuildConfig(_Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    version: str = "1"
    task: Task = "raw"
    labels: list[str] | None = None
    task_options: dict[str, Any] = Field(default_factory=dict)
    source: SourceConfig
    export: ExportConfig
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    validation: ValidationConfig
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    # Folder the relative paths resolve against (not part of the file).
    root: Path = Field(default=Path("."), exclude=True)

    def path(self, relative: str) -> Path:
        return (self.root / relative).resolve()


def _format(exc: ValidationError, path: Path) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return f"{path} is invalid:\n" + "\n".join(lines)


def load_config(folder: Path, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """Read ``folder/slimserve.toml``; ``overrides`` replace top-level sections' keys (CLI flags)."""
    path = folder / CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: an example folder needs a {CONFIG_FILE}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.rpartition(".")
        target = raw.setdefault(section, {}) if section else raw
        target[key] = value
    try:
        return BuildConfig.model_validate({**raw, "root": folder.resolve()})
    except ValidationError as exc:
        raise ConfigError(_format(exc, path)) from None
