"""The schema of ``slimserve.toml``: one pydantic model per table, ``BuildConfig`` for the file.

``[deploy]`` is ``slimserve.infra.options.StackOptions`` itself (the stack's own model), so the
file, ``--option`` and the CDK app accept exactly the same keys. Reading the file and turning
validation errors into messages is ``slimserve.build.config.load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slimserve.build.config.task_options import TASK_OPTIONS, task_option_problems
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


class _CompressionOptions(_Section):
    """The options of one compression recipe (shared by [compression] and auto candidates)."""

    per_channel: bool = Field(True, description="int8: one scale per output channel of each weight (not one per tensor)")
    reduce_range: bool = Field(False, description="int8: 7-bit weights (avoids int16 saturation on CPUs without VNNI)")
    weight_type: QuantTypeName = Field("int8", description="int8: signed or unsigned 8-bit weights")
    activation_type: QuantTypeName = Field("uint8", description="static-int8: the activations' 8-bit type (QDQ format)")
    calibrate_method: CalibrateMethod = Field("MinMax", description="static-int8: how activation ranges are calibrated on validation.calibration")
    percentile: float | None = Field(None, gt=0.0, le=100.0, description="static-int8, Percentile calibration only")
    calibration_samples: int | None = Field(None, ge=1, description="static-int8: use at most this many calibration samples")
    # matmul-nbits only: MatMul weights in blocks of block_size along K, each block with its own
    # scale (onnxruntime MatMulNBits); accuracy_level 4 computes in int8 with activations also
    # quantized per block. Other weighted ops (embeddings' Gather, Gemm, Conv) get dynamic int8.
    bits: Literal[4, 8] = Field(8, description="matmul-nbits: bits per MatMul weight")
    block_size: Literal[16, 32, 64, 128, 256] = Field(32, description="matmul-nbits: weights per block (each block has its own scale)")
    accuracy_level: int = Field(4, ge=0, le=4, description="matmul-nbits: 4 computes in int8 (activations quantized per block), 0 in fp32")
    # Mixed precision (every method): nodes kept in fp32, by name (fnmatch patterns allowed,
    # each must match a node) and by op type. auto candidates inherit these and may add more.
    nodes_to_exclude: list[str] = Field(
        default_factory=list, description="nodes kept in fp32, by name or fnmatch pattern (each must match a node)"
    )
    op_types_to_exclude: list[str] = Field(default_factory=list, description="op types kept in fp32 (e.g. Conv)")
    op_types_to_quantize: list[str] | None = Field(None, description="int8: only these op types (default: every one the quantizer knows)")
    # Graph preparation: quant_pre_process, then optionally onnxruntime.transformers fusions.
    optimize: bool = Field(True, description="shape inference and onnxruntime's graph optimizations before compressing")
    transformer_fusion: FusionModelType | None = Field(
        None, description="onnxruntime.transformers fusions (Attention, LayerNorm...) for this model type before int8"
    )
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

    method: ConcreteMethod = Field(description="the candidate's method; its other keys default to [compression]'s")
    name: str | None = Field(None, description="label in the candidate table")

    @model_validator(mode="after")
    def _consistent(self) -> CandidateConfig:
        problems = self._check_options(self.method)
        if problems:
            raise ValueError("\n".join(problems))
        return self


class AutoConfig(_Section):
    """compression.method = "auto": search candidates, ship the best one that passes the gate."""

    objective: Literal["latency", "size"] = Field("latency", description="among the candidates that pass, ship the fastest or the smallest")
    time_budget_s: float = Field(900.0, gt=0.0, description="stop trying candidates after this (fp32 is always weighed)")
    threads: int | None = Field(
        None, ge=1, le=64, description="onnxruntime intra-op threads for latency (default: the vCPUs Lambda gives runtime.memory_mb)"
    )
    latency_shape: list[int] = Field(
        default_factory=lambda: [1, 16], min_length=1,
        description="sizes of the inputs' free (-1) axes for the latency feed, by position: [batch, sequence, ...]",
    )
    runs: int = Field(50, ge=5, le=100000, description="timed runs per candidate")
    # Multi-threaded sessions always use wall time.
    latency_clock: Literal["cpu", "wall"] = Field(
        "cpu", description="cpu: the calling thread's CPU time per run (robust on a busy machine); wall: elapsed time"
    )
    warmup: int = Field(5, ge=0, le=10000, description="untimed runs before timing")
    # Hard requirements besides the gate (None: not required).
    max_size_ratio: float | None = Field(None, gt=0.0, description="candidate bytes / fp32 bytes")
    min_speedup: float | None = Field(None, gt=0.0, description="fp32 latency / candidate latency")
    # Ranked on calibration data, never the held-out set.
    sensitivity: bool = Field(
        True, description="find the nodes the most promising failing recipes lose accuracy in, and retry with them in fp32"
    )
    max_excluded: int = Field(8, ge=0, le=256, description="at most this many nodes kept in fp32 that way")
    candidates: list[CandidateConfig] | None = Field(None, min_length=1, description="replace the built-in candidate list")


class CompressionConfig(_CompressionOptions):
    """[compression]: how the model is made smaller; whatever it is, the gate must pass."""

    method: CompressionMethod = Field(
        "dynamic-int8",
        description="none, dynamic-int8, static-int8, fp16, matmul-nbits, or auto (search them, fp32 included, "
        "and ship the best that passes); a method that cannot touch the model (no MatMul / Gemm / Conv weights) "
        "ships fp32 and says so",
    )
    auto: AutoConfig = Field(default_factory=AutoConfig, description="the search, for method = 'auto'")
    sensitivity: Literal["on-failure", "always", "off"] = Field(
        "on-failure", description="a leave-one-out table in report.md of where accuracy is lost: when the gate fails, always, or never"
    )
    sensitivity_budget_s: float = Field(300.0, gt=0.0, description="time the sensitivity table may take")

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

    method: Literal["magnitude", "structured"] = Field(
        description="magnitude: the smallest weights to zero (shapes unchanged); structured: whole neurons, "
        "channels or attention heads removed (shapes shrink)"
    )
    sparsity: float = Field(gt=0.0, lt=1.0, description="fraction of weights (magnitude) or units (structured)")
    finetune: str | None = Field(
        None, description="'file.py:function' called as function(model) after pruning (a short fine-tune; may return a model)"
    )
    exclude: list[str] = Field(default_factory=list, description="module names (model.named_modules()) left untouched")


class DistillConfig(_Section):
    """[distill]: train a smaller student on the original model's (the teacher's) outputs."""

    student: str = Field(description="'file.py:function' returning the untrained student nn.Module")
    data: str = Field(description="'file.py:function' returning (inputs dict, labels or None): training data")
    temperature: float = Field(4.0, gt=0.0, le=100.0, description="softens the teacher's logits for the soft targets")
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="weight of the soft-target loss; 1 - alpha goes to the labels")
    epochs: int = Field(60, ge=1, le=100000, description="passes over distill.data")
    batch_size: int = Field(64, ge=1, le=65536, description="training batch size")
    learning_rate: float = Field(3e-3, gt=0.0, le=10.0, description="Adam learning rate")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="Adam weight decay")
    seed: int = Field(0, description="random seed of the training")
    threads: int = Field(1, ge=1, le=256, description="torch threads while training (1 is fastest for small models on a busy machine)")
    loss: Literal["kl", "mse", "cosine"] = Field(
        "kl", description="kl: soft targets of class logits; mse / cosine: match output vectors (embeddings)"
    )


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

