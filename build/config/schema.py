"""The schema of ``slimserve.toml``: one pydantic model per table, ``BuildConfig`` for the file.

``[deploy]`` is ``slimserve.infra.options.StackOptions`` itself (the stack's own model), so the
file, ``--option`` and the CDK app accept exactly the same keys. Reading the file and turning
validation errors into messages is ``slimserve.build.config.load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from slimserve.build.config.base import _Section
from slimserve.build.config.compression import (
    CompressionConfig,
    DistillConfig,
    PruneConfig,
)
from slimserve.build.config.task_options import TASK_OPTIONS, task_option_problems
from slimserve.handler.manifest import Architecture, ExplainMethod, Limits, Task, TensorSpec
from slimserve.infra.options import StackOptions

SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


class SourceConfig(_Section):
    """[source]: the model: an existing ONNX file, a PyTorch module plus its weights, or a Hugging Face
    model folder."""

    module: str | None = Field(None, description="PyTorch: the Python file whose factory builds the nn.Module")
    factory: str = Field("build_model", description="PyTorch: the function in source.module that returns the nn.Module")
    factory_kwargs: dict[str, Any] = Field(default_factory=dict, description="PyTorch: keyword arguments for the factory")
    weights: str | None = Field(
        None,
        description="PyTorch: the weights, safetensors or a state dict .pt (never a pickle); a path, or "
        "'package:<import name>/<path>' for a file inside an installed package",
    )
    train: str | None = Field(default=None, description="PyTorch: 'file.py:function' run when the weights file is missing")
    onnx: str | None = Field(
        None,
        description="an existing ONNX model (its external data, if any, beside it); its inputs and outputs are "
        "read from the file",
    )
    huggingface: str | None = Field(
        None,
        description="a Hugging Face transformers or sentence-transformers model folder (config.json, "
        "model.safetensors, tokenizer.json; modules.json for sentence-transformers), read offline; a path, or "
        "'package:<import name>/<path>' for a folder inside an installed package (docs/huggingface.md)",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        kinds = [name for name in ("onnx", "module", "huggingface") if getattr(self, name) is not None]
        if not kinds:
            raise ValueError(
                "set either source.onnx (an .onnx file), source.module + source.weights, or source.huggingface "
                "(a model folder)"
            )
        if len(kinds) > 1:
            raise ValueError(f"set only one of source.{' and source.'.join(kinds)}")
        if self.module is not None and self.weights is None:
            raise ValueError("source.module needs source.weights (a .safetensors file or a state dict .pt)")
        return self


class ExportConfig(_Section):
    """[export]: the PyTorch export (required for source.module); for source.onnx only a check of
    the file (every key optional: what is declared must match the model)."""

    opset: int = Field(17, ge=13, le=21, description="ONNX opset of the PyTorch export (an ONNX source keeps its own)")
    inputs: list[TensorSpec] | None = Field(
        None,
        min_length=1,
        description="the model's inputs: {name, datatype, shape}, -1 marks a free axis; required for "
        "source.module (the exporter traces with them), optional for source.onnx (checked against the file)",
    )
    outputs: list[TensorSpec] | None = Field(
        None,
        min_length=1,
        description="the model's outputs, as inputs; required for source.module, optional for source.onnx",
    )
    dynamo: bool = Field(False, description="PyTorch: use torch.onnx's dynamo exporter instead of TorchScript")


class ValidationConfig(_Section):
    """[validation]: the accuracy gate: held-out data, the metric and how much may be lost."""

    data: str = Field(description="'file.py:function' returning (inputs: {input name: array}, labels) held out from training")
    calibration: str | None = Field(
        None, description="'file.py:function' as data, for static int8 calibration; must not be the held-out data"
    )
    metric: Literal["accuracy", "cosine"] = Field("accuracy", description="accuracy (class labels) or cosine (embeddings)")
    output: str | None = Field(
        None,
        description="the output the gate scores when the model has several (task = raw); classification scores "
        "the output it serves (task_options.output)",
    )
    tolerance: float = Field(0.01, ge=0.0, le=1.0, description="accuracy the shipped model may lose (0.01 = 1 point)")
    min_agreement: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="also require the shipped model's top-1 to agree with the original's on this fraction of "
        "samples (accuracy alone can hide flips)",
    )
    max_score_diff: float | None = Field(
        None,
        gt=0.0,
        description="accuracy: also require the shipped model's scores to stay this close to the original's on every "
        "row (classification: the class probabilities; raw: the scored output's values)",
    )
    min_cosine: float = Field(0.95, ge=-1.0, le=1.0, description="cosine: every text's vector must reach this")
    mean_cosine: float = Field(0.99, ge=-1.0, le=1.0, description="cosine: the mean over the texts must reach this")
    batch_size: int = Field(32, ge=1, le=4096, description="held-out rows per run (the handler answers them in these batches)")
    # Margins beyond the held-out sample (build/gate/margin.py), always reported at 95 %; set a
    # value to require it. (The minimum's bootstrap bound is the minimum itself: hence a quantile.)
    cosine_quantile: float = Field(
        0.01, gt=0.0, le=0.5, description="cosine: the low quantile of per-text cosine whose 95 % bootstrap lower bound is reported"
    )
    cosine_lower_bound: float | None = Field(
        None, ge=-1.0, le=1.0, description="cosine: require that bootstrap lower bound (on cosine_quantile) to reach this"
    )
    accuracy_lower_bound: float | None = Field(
        None, ge=0.0, le=1.0, description="accuracy: require the exact binomial 95 % lower bound on the shipped model's accuracy to reach this"
    )
    agreement_lower_bound: float | None = Field(
        None, ge=0.0, le=1.0, description="accuracy: require the exact binomial 95 % lower bound on top-1 agreement to reach this"
    )
    min_explanation_agreement: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="refuse a shipped model whose global importance ranks correlate (Spearman) below this with the "
        "original's (report.md's Explanations; needs [explain])",
    )


class ExplainConfig(_Section):
    """[explain]: what POST .../explain offers (docs/explanations.md) and the report's global
    importance, original vs shipped."""

    enabled: bool = Field(True, description="offer POST .../explain and report global importance")
    methods: list[ExplainMethod] | None = Field(
        None,
        min_length=1,
        description="offered methods, the first the default (default: kernel-shap first for tensor inputs, "
        "shapley-sampling first for text)",
    )
    samples: int | None = Field(
        None, ge=2, le=65536, description="coalitions per request in the sampled modes (default: tensors 1024, text 256)"
    )
    max_samples: int = Field(8192, ge=2, le=65536, description="the most coalitions a request may ask for")
    background: int = Field(16, ge=1, le=256, description="held-out rows shipped as the background (stratified by label, fixed seed)")
    image_shape: list[int] | None = Field(
        None, min_length=2, max_length=4, description="image inputs: each row reshaped to this (last two axes height, width)"
    )
    patch: list[int] | None = Field(
        None, min_length=2, max_length=2, description="image inputs: attributed by patches of [height, width] pixels"
    )
    importance_samples: int = Field(32, ge=2, le=10000, description="held-out rows (texts) explained for the report's global importance")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the background and report rows")

    @model_validator(mode="after")
    def _consistent(self) -> ExplainConfig:
        problems = []
        if self.samples is not None and self.samples > self.max_samples:
            problems.append(f"samples: {self.samples} is more than max_samples ({self.max_samples})")
        if (self.patch is None) != (self.image_shape is None):
            problems.append("patch: image inputs need both image_shape and patch")
        if any(size < 1 for size in [*(self.image_shape or []), *(self.patch or [])]):
            problems.append("image_shape: sizes must be positive")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class RuntimeConfig(_Section):
    """[runtime]: the Lambda function the zip is built for."""

    python: str = Field("3.12", description=f"the Lambda Python runtime: one of {', '.join(SUPPORTED_PYTHONS)}")
    architecture: Architecture = Field("x86_64", description="x86_64 or arm64")
    memory_mb: int = Field(1024, ge=128, le=10240, description="the function's memory (Lambda gives 1 vCPU per 1,769 MiB of memory)")
    timeout_s: int = Field(20, ge=1, le=28, description="the function's timeout (API Gateway ends requests after 29 s)")
    limits: Limits = Field(default_factory=Limits, description="request limits the handler enforces")
    extra_requirements: list[str] = Field(default_factory=list, description="more pip requirements installed into lambda.zip")

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if value not in SUPPORTED_PYTHONS:
            raise ValueError(f"runtime.python must be one of {list(SUPPORTED_PYTHONS)} (Lambda runtimes)")
        return value


class SigningConfig(_Section):
    """[signing]: the public key every deploy verifies the bundle's signature against (a path,
    relative to the project folder). The private key is never named here: it is a secret of the
    machine that builds (``slimserve build --sign-key`` or $SLIMSERVE_SIGNING_KEY), while this
    file is committed and shared by everyone who deploys."""

    public_key: str | None = Field(
        None, description="PEM public key every deploy verifies the bundle's signature (model.sig) against"
    )


class BuildConfig(_Section):
    """slimserve.toml."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="the model's name in the API and the stack")
    version: str = Field("1", description="the model version the API serves")
    task: Task = Field("raw", description="raw, classification or embedding: what the API adds around the model")
    labels: list[str] | None = Field(
        None,
        description="classification: one name per class, in the order of the model's scores (default: the "
        "model's own class labels when the ONNX file carries them, else the class indices)",
    )
    task_options: dict[str, Any] = Field(default_factory=dict, description="the task's options (see [task_options] below)")
    source: SourceConfig = Field(description="the model")
    export: ExportConfig = Field(default_factory=ExportConfig, description="the PyTorch export, or a check of the ONNX file")
    compression: CompressionConfig = Field(default_factory=CompressionConfig, description="how the model is made smaller")
    validation: ValidationConfig = Field(description="the accuracy gate")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="the Lambda function")
    prune: PruneConfig | None = Field(None, description="prune a PyTorch model before export")
    distill: DistillConfig | None = Field(None, description="distill a PyTorch model into a smaller student")
    # --option and the named flags override them, key by key.
    deploy: StackOptions = Field(
        default_factory=StackOptions,
        description="the stack this project deploys with (synth, deploy, diff, destroy, local, invoke)",
    )
    explain: ExplainConfig = Field(default_factory=ExplainConfig, description="what POST .../explain offers (docs/explanations.md)")
    signing: SigningConfig = Field(default_factory=SigningConfig, description="the public key deploys verify signed builds with")

    # Folder the relative paths resolve against (not part of the file).
    root: Path = Field(default=Path("."), exclude=True)

    @property
    def options(self) -> BaseModel:
        """``task_options`` as the task's table (validated when the file was read)."""
        return TASK_OPTIONS[self.task].model_validate(self.task_options)

    @model_validator(mode="after")
    def _combinations(self) -> BuildConfig:
        # Each problem is "key: message"; _format prints them as the file's other errors.
        problems = []
        compression = self.compression
        if compression.method == "static-int8" and self.validation.calibration is None:
            problems.append(
                "compression.method: 'static-int8' needs calibration data: set validation.calibration "
                "('file.py:function', separate from validation.data)"
            )
        if self.validation.calibration is not None and self.validation.calibration == self.validation.data:
            problems.append("validation.calibration: must not be the held-out validation.data")
        if self.source.huggingface is not None:
            problems += _huggingface_problems(self)
        if self.prune is not None and self.source.module is None:
            problems.append("prune: pruning needs a PyTorch source (source.module); an ONNX source cannot be pruned")
        if self.prune is not None and self.distill is not None:
            problems.append("prune: choose [prune] or [distill], not both (prune the student in its own build)")
        if self.distill is not None and self.distill.loss == "kl" and self.validation.metric != "accuracy":
            problems.append(
                f"distill.loss: 'kl' needs class logits (validation.metric = 'accuracy'); use 'cosine' or 'mse' "
                f"for metric {self.validation.metric!r}"
            )
        if self.distill is not None and self.distill.data in (self.validation.data, self.validation.calibration):
            problems.append("distill.data: must not be validation.data or validation.calibration (train on other data)")
        if self.validation.min_explanation_agreement is not None and not self.explain.enabled:
            problems.append("validation.min_explanation_agreement: needs explanations (explain.enabled = true)")
        if self.source.module is not None and (self.export.inputs is None or self.export.outputs is None):
            problems.append(
                "export: a PyTorch source (source.module) needs export.inputs and export.outputs: the exporter "
                "traces the model with them"
            )
        if (self.validation.metric == "cosine") != (self.task == "embedding"):
            problems.append(
                f"validation.metric: {self.validation.metric!r} does not fit task = {self.task!r}: embeddings are gated "
                "on 'cosine', raw and classification models on 'accuracy'"
            )
        if self.validation.batch_size > self.runtime.limits.max_batch:
            problems.append(
                f"validation.batch_size: {self.validation.batch_size} is more than runtime.limits.max_batch "
                f"({self.runtime.limits.max_batch}); the build answers the held-out rows through the handler in these batches"
            )
        if self.validation.max_score_diff is not None and self.validation.metric != "accuracy":
            problems.append("validation.max_score_diff: applies to metric = 'accuracy' (cosine gates on min_cosine and mean_cosine)")
        if self.validation.output is not None and self.task != "raw":
            problems.append(
                f"validation.output: applies to task = 'raw' only; task = {self.task!r} scores the output it serves"
                + (" (task_options.output)" if self.task == "classification" else "")
            )
        problems += task_option_problems(self.task, self.task_options)
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def path(self, relative: str) -> Path:
        return (self.root / relative).resolve()


def _huggingface_problems(config: BuildConfig) -> list[str]:
    """What source.huggingface decides itself (the folder's config.json and tokenizer)."""
    problems = []
    if config.task not in ("embedding", "classification"):
        problems.append(
            f"task: source.huggingface serves task = 'embedding' (sentence vectors) or 'classification' "
            f"(a ...ForSequenceClassification folder); got {config.task!r}"
        )
    if config.export.inputs is not None or config.export.outputs is not None:
        problems.append("export: source.huggingface exports the folder's own inputs and outputs; remove export.inputs / export.outputs")
    if config.task == "classification" and config.labels is not None:
        problems.append("labels: source.huggingface takes the labels from the folder's config.json (id2label)")
    taken = sorted({"tokenizer_source"} & set(config.task_options))
    if taken:
        problems.append(f"task_options.{taken[0]}: source.huggingface ships the folder's own tokenizer.json")
    return problems

