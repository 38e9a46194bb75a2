"""The compression tables of ``slimserve.toml``: ``[compression]`` (with ``[compression.auto]``
and its candidates), ``[prune]`` and ``[distill]``."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from slimserve.build.config.base import _Section

CompressionMethod = Literal["none", "dynamic-int8", "static-int8", "fp16", "matmul-nbits", "per-token-int8", "auto"]
# What one candidate of the ``auto`` search (or a fixed build) can be: everything but "auto".
ConcreteMethod = Literal["none", "dynamic-int8", "static-int8", "fp16", "matmul-nbits", "per-token-int8"]
QuantTypeName = Literal["int8", "uint8"]
CalibrateMethod = Literal["MinMax", "Entropy", "Percentile"]
# onnxruntime.transformers.optimizer model types whose fusions slimserve exposes.
FusionModelType = Literal["bert", "bart", "gpt2", "t5", "vit", "clip"]


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
