"""The schema of ``slimserve.toml``: one pydantic model per table, ``BuildConfig`` for the file.

``[deploy]`` is ``slimserve.infra.options.StackOptions`` itself (the stack's own model), so the
file, ``--option`` and the CDK app accept exactly the same keys. Reading the file and turning
validation errors into messages is ``slimserve.build.config.load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slimserve.handler.manifest import Architecture, ExplainMethod, Limits, Task, TensorSpec
from slimserve.infra.options import StackOptions

CompressionMethod = Literal["none", "dynamic-int8", "static-int8", "fp16", "matmul-nbits", "per-token-int8", "auto"]
# What one candidate of the ``auto`` search (or a fixed build) can be: everything but "auto".
ConcreteMethod = Literal["none", "dynamic-int8", "static-int8", "fp16", "matmul-nbits", "per-token-int8"]
QuantTypeName = Literal["int8", "uint8"]
CalibrateMethod = Literal["MinMax", "Entropy", "Percentile"]
# onnxruntime.transformers.optimizer model types whose fusions slimserve exposes.
FusionModelType = Literal["bert", "bart", "gpt2", "t5", "vit", "clip"]
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


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
    def _one_kind(self) -> SourceConfig:
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


class _CompressionOptions(_Section):
    """The options of one compression recipe (shared by [compression] and auto candidates)."""

    # int8 (dynamic and static)
    per_channel: bool = True
    reduce_range: bool = False
    weight_type: QuantTypeName = "int8"
    # static int8 only (QDQ format, calibrated on validation.calibration)
    activation_type: QuantTypeName = "uint8"
    calibrate_method: CalibrateMethod = "MinMax"
    percentile: float | None = Field(None, gt=0.0, le=100.0, description="Percentile calibration only")
    calibration_samples: int | None = Field(None, ge=1, description="use at most this many calibration samples")
    # matmul-nbits only: MatMul weights in blocks of block_size along K, each block with its own
    # scale (onnxruntime MatMulNBits); accuracy_level 4 computes in int8 with activations also
    # quantized per block. Other weighted ops (embeddings' Gather, Gemm, Conv) get dynamic int8.
    bits: Literal[4, 8] = 8
    block_size: Literal[16, 32, 64, 128, 256] = 32
    accuracy_level: int = Field(4, ge=0, le=4)
    # Mixed precision (every method): nodes kept in fp32, by name (fnmatch patterns allowed,
    # each must match a node) and by op type. auto candidates inherit these and may add more.
    nodes_to_exclude: list[str] = Field(default_factory=list)
    op_types_to_exclude: list[str] = Field(default_factory=list)
    op_types_to_quantize: list[str] | None = None
    # Graph preparation: quant_pre_process, then optionally onnxruntime.transformers fusions.
    optimize: bool = True
    transformer_fusion: FusionModelType | None = None
    fusion_num_heads: int = Field(0, ge=0, description="0: detect from the graph")
    fusion_hidden_size: int = Field(0, ge=0, description="0: detect from the graph")

    def _check_options(self, method: str) -> list[str]:
        problems = []
        if self.percentile is not None and self.calibrate_method != "Percentile":
            problems.append(
                f"percentile: applies only to calibrate_method = 'Percentile' (got {self.calibrate_method!r})"
            )
        if self.activation_type == "int8" and self.weight_type == "uint8" and method in ("static-int8", "auto"):
            problems.append(
                "weight_type: int8 activations need int8 weights (onnxruntime has no int8 x uint8 kernels)"
            )
        if method == "per-token-int8":
            problems += self._check_per_token()
        overlap = sorted(set(self.op_types_to_exclude) & set(self.op_types_to_quantize or []))
        if overlap:
            problems.append(f"op_types_to_exclude: {overlap} also listed in op_types_to_quantize")
        return problems


    def _check_per_token(self) -> list[str]:
        """per-token-int8 (build/compression/per_token.py) chooses its own op types and needs the
        unfused graph and s8 weights; options that would be silently ignored are refused."""
        problems = []
        if self.weight_type != "int8":
            problems.append(
                "weight_type: per-token-int8 quantizes weights to int8 (onnxruntime's MatMulIntegerToFloat s8 "
                f"kernels); got {self.weight_type!r}"
            )
        if self.transformer_fusion is not None:
            problems.append(
                "transformer_fusion: per-token-int8 rewrites the unfused encoder graph (a fused Attention has no "
                "per-token int8 kernel); remove transformer_fusion"
            )
        if self.op_types_to_quantize is not None:
            problems.append(
                "op_types_to_quantize: per-token-int8 picks its own (MatMul and the vocabulary Gather); use "
                "nodes_to_exclude or op_types_to_exclude to keep nodes in fp32"
            )
        return problems


class CandidateConfig(_CompressionOptions):
    """One entry of compression.auto.candidates: keys not given are taken from [compression]."""

    method: ConcreteMethod
    name: str | None = Field(None, description="label in the candidate table")

    @model_validator(mode="after")
    def _consistent(self) -> CandidateConfig:
        problems = self._check_options(self.method)
        if problems:
            raise ValueError("\n".join(problems))
        return self


class AutoConfig(_Section):
    """compression.method = "auto": search candidates, ship the best one that passes the gate."""

    objective: Literal["latency", "size"] = "latency"
    time_budget_s: float = Field(900.0, gt=0.0)
    # onnxruntime intra-op threads for latency; default: the vCPUs Lambda gives runtime.memory_mb.
    threads: int | None = Field(None, ge=1, le=64)
    # Sizes of the inputs' free (-1) axes for the latency feed, by axis position: [batch, seq, ...].
    latency_shape: list[int] = Field(default_factory=lambda: [1, 16], min_length=1)
    runs: int = Field(50, ge=5, le=100000)
    # "cpu": the calling thread's CPU time per run (single-threaded sessions; robust on a busy
    # build machine); "wall": elapsed time. Multi-threaded sessions always use wall time.
    latency_clock: Literal["cpu", "wall"] = "cpu"
    warmup: int = Field(5, ge=0, le=10000)
    # Hard requirements besides the gate (None: not required).
    max_size_ratio: float | None = Field(None, gt=0.0, description="candidate bytes / fp32 bytes")
    min_speedup: float | None = Field(None, gt=0.0, description="fp32 latency / candidate latency")
    # Leave-one-out sensitivity of the most promising failing recipes (ranked on calibration data,
    # never the held-out set), then candidates keeping their worst nodes in fp32, one more each.
    sensitivity: bool = True
    max_excluded: int = Field(8, ge=0, le=256)
    # Replace the built-in candidate list.
    candidates: list[CandidateConfig] | None = Field(None, min_length=1)


class CompressionConfig(_CompressionOptions):
    method: CompressionMethod = "dynamic-int8"
    auto: AutoConfig = Field(default_factory=AutoConfig)
    # Leave-one-out sensitivity table in report.md for a fixed method: when the gate fails
    # (default), always, or never; bounded by sensitivity_budget_s.
    sensitivity: Literal["on-failure", "always", "off"] = "on-failure"
    sensitivity_budget_s: float = Field(300.0, gt=0.0)

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> Any:
        if value not in get_args(CompressionMethod):
            raise ValueError(
                "Input should be 'none', 'dynamic-int8', 'static-int8' or 'fp16' (one method), 'matmul-nbits' "
                "(blockwise weight-only int8 / int4), 'per-token-int8' (BERT-family encoders: activations scaled per "
                "token), or 'auto' (search them and ship the best that passes the gate)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CompressionConfig:
        problems = self._check_options(self.method)
        if "auto" in self.model_fields_set and self.method != "auto":
            problems.append(f"auto: [compression.auto] applies only to method = 'auto' (got {self.method!r})")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def candidate(self, override: CandidateConfig) -> CompressionConfig:
        """This config with a candidate's keys replacing its own (the rest inherited)."""
        update = override.model_dump(exclude_unset=True, exclude={"name"})
        update["method"] = override.method
        return self.model_copy(update={**update, "auto": AutoConfig()})


class PruneConfig(_Section):
    """[prune]: prune the PyTorch model before export."""

    # magnitude: global unstructured, smallest |w| to zero (shapes unchanged; zeros compress).
    # structured: whole neurons / conv channels / attention heads removed (shapes shrink).
    method: Literal["magnitude", "structured"]
    sparsity: float = Field(gt=0.0, lt=1.0, description="fraction of weights (magnitude) or units (structured)")
    # 'file.py:function' called as function(model) after pruning (short fine-tune; may return a model).
    finetune: str | None = None
    # Module names (model.named_modules()) left untouched.
    exclude: list[str] = Field(default_factory=list)


class DistillConfig(_Section):
    """[distill]: train a smaller student on the original model's (the teacher's) outputs."""

    student: str = Field(description="'file.py:function' returning the untrained student nn.Module")
    data: str = Field(description="'file.py:function' returning (inputs dict, labels or None): training data")
    temperature: float = Field(4.0, gt=0.0, le=100.0)
    # Weight of the soft-target loss; (1 - alpha) goes to cross-entropy on the labels.
    alpha: float = Field(0.7, ge=0.0, le=1.0)
    epochs: int = Field(60, ge=1, le=100000)
    batch_size: int = Field(64, ge=1, le=65536)
    learning_rate: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    seed: int = 0
    # torch intra-op threads while training (1 is fastest for small models on a busy machine).
    threads: int = Field(1, ge=1, le=256)
    # kl: soft targets of class logits; mse / cosine: match output vectors (embeddings).
    loss: Literal["kl", "mse", "cosine"] = "kl"


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
    # Margins beyond the held-out sample (build/gate/margin.py), always reported at 95 %; set a
    # value to require it. Cosine: the bootstrap lower bound on the cosine_quantile of per-text
    # cosine (default the 1st percentile; the minimum's bootstrap bound is the minimum itself).
    cosine_quantile: float = Field(0.01, gt=0.0, le=0.5)
    cosine_lower_bound: float | None = Field(None, ge=-1.0, le=1.0)
    # Classification: exact binomial lower bounds on the candidate's accuracy and agreement.
    accuracy_lower_bound: float | None = Field(None, ge=0.0, le=1.0)
    agreement_lower_bound: float | None = Field(None, ge=0.0, le=1.0)
    # Refuse a shipped model whose global importance ranks (report.md's "Explanations") correlate
    # below this with the original's (Spearman); needs [explain]. Off by default.
    min_explanation_agreement: float | None = Field(None, ge=-1.0, le=1.0)


class ExplainConfig(_Section):
    """[explain]: what POST .../explain offers (docs/explanations.md) and the report's global
    importance, original vs shipped."""

    enabled: bool = True
    # Offered methods, the first the default (default: kernel-shap first for tensor inputs,
    # shapley-sampling first for text).
    methods: list[ExplainMethod] | None = Field(None, min_length=1)
    # Coalitions per request (sampled modes): default (tensors 1024, text 256) and maximum.
    samples: int | None = Field(None, ge=2, le=65536)
    max_samples: int = Field(8192, ge=2, le=65536)
    # Held-out rows shipped as the background (stratified by label, fixed seed).
    background: int = Field(16, ge=1, le=256)
    # Image inputs: each row reshaped to image_shape (last two axes height, width), attributed
    # by patch [height, width].
    image_shape: list[int] | None = Field(None, min_length=2, max_length=4)
    patch: list[int] | None = Field(None, min_length=2, max_length=2)
    # Held-out rows (texts) explained for the report's global importance.
    importance_samples: int = Field(32, ge=2, le=10000)
    seed: int = Field(0, ge=0, le=2**32 - 1)

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
    prune: PruneConfig | None = None
    distill: DistillConfig | None = None
    # The stack options this project deploys with (synth, deploy, diff, destroy, local, invoke);
    # --option and the named flags override them, key by key.
    deploy: StackOptions = Field(default_factory=StackOptions)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)

    # Folder the relative paths resolve against (not part of the file).
    root: Path = Field(default=Path("."), exclude=True)

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
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def path(self, relative: str) -> Path:
        return (self.root / relative).resolve()
