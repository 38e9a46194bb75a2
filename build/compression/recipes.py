"""The ``auto`` search's candidates: the built-in recipes (methods x options), the user's own
(``compression.auto.candidates``), and a readable name for any compression configuration.

Every candidate is the user's ``[compression]`` section with a few fields changed, so it keeps
their nodes_to_exclude / op_types_to_exclude / fusion settings; the sensitivity step adds
exclusions later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slimserve.build.config import CompressionConfig

DYNAMIC_RECIPES: list[tuple[str, dict[str, Any]]] = [
    ("dynamic s8 per-channel", {"per_channel": True, "reduce_range": False, "weight_type": "int8"}),
    ("dynamic s8 per-channel reduce-range", {"per_channel": True, "reduce_range": True, "weight_type": "int8"}),
    ("dynamic u8 per-channel", {"per_channel": True, "reduce_range": False, "weight_type": "uint8"}),
    ("dynamic s8 per-tensor", {"per_channel": False, "reduce_range": False, "weight_type": "int8"}),
]
NBITS_RECIPES: list[tuple[str, dict[str, Any]]] = [
    ("matmul-nbits int8 block 32", {"bits": 8, "block_size": 32, "accuracy_level": 4}),
    ("matmul-nbits int4 block 32", {"bits": 4, "block_size": 32, "accuracy_level": 4}),
]
STATIC_RECIPES: list[tuple[str, dict[str, Any]]] = [
    ("static MinMax per-channel", {"calibrate_method": "MinMax", "reduce_range": False}),
    ("static MinMax per-channel reduce-range", {"calibrate_method": "MinMax", "reduce_range": True}),
    ("static Entropy per-channel reduce-range", {"calibrate_method": "Entropy", "reduce_range": True}),
    ("static Percentile 99.999 per-channel reduce-range", {"calibrate_method": "Percentile", "percentile": 99.999, "reduce_range": True}),
]


@dataclass
class Candidate:
    name: str
    config: CompressionConfig
    origin: str = "built-in"  # built-in | user | sensitivity


def variant(base: CompressionConfig, **update: Any) -> CompressionConfig:
    """``base`` with ``update`` applied and no ``auto`` settings of its own (it is one candidate)."""
    return base.model_copy(update={**update, "auto": type(base.auto)()})


def default_candidates(
    base: CompressionConfig, *, calibration: bool, transformer: bool, matmul_weights: bool = False, encoder: bool = False
) -> list[Candidate]:
    """The built-in search space: dynamic int8 recipes (also fused, for transformers), per-token
    int8 (for BERT-family encoders: per_token.unsupported found its MatMuls), fp16, MatMulNBits
    (when there are MatMul weights) and static int8 (when there is calibration data)."""
    candidates = [
        Candidate(name, variant(base, method="dynamic-int8", **options)) for name, options in DYNAMIC_RECIPES
    ]
    if encoder:
        unfused = {"transformer_fusion": None, "weight_type": "int8", "op_types_to_quantize": None}
        candidates.append(Candidate("per-token int8", variant(base, method="per-token-int8", per_channel=True, reduce_range=False, **unfused)))
    if transformer and base.transformer_fusion is None:
        candidates += [
            Candidate(f"fused {name}", variant(base, method="dynamic-int8", transformer_fusion="bert", **options))
            for name, options in DYNAMIC_RECIPES[:3]
        ]
    candidates.append(Candidate("fp16", variant(base, method="fp16")))
    if matmul_weights:
        candidates += [
            Candidate(name, variant(base, method="matmul-nbits", per_channel=True, **options)) for name, options in NBITS_RECIPES
        ]
    if calibration:
        for name, options in STATIC_RECIPES:
            options = {"per_channel": True, "percentile": None, "activation_type": "uint8", "weight_type": "int8", **options}
            candidates.append(Candidate(name, variant(base, method="static-int8", **options)))
    return candidates


def user_candidates(base: CompressionConfig) -> list[Candidate]:
    """``compression.auto.candidates``, each completed from ``base`` and named (by ``describe``
    when the user gave no name)."""
    assert base.auto.candidates is not None
    return [Candidate(c.name or describe(base.candidate(c)), base.candidate(c), "user") for c in base.auto.candidates]


def describe(config: CompressionConfig) -> str:
    if config.method == "fp16":
        return "fp16"
    if config.method == "matmul-nbits":
        return f"matmul-nbits int{config.bits} block {config.block_size}"
    if config.method == "none":
        return "none (fp32)"
    if config.method == "per-token-int8":
        return "per-token int8" + (" per-tensor weights" if not config.per_channel else "") + (" reduce-range" if config.reduce_range else "")
    parts = [config.method.removesuffix("-int8")]
    if config.method == "static-int8":
        parts.append(config.calibrate_method)
    parts.append(("u8" if config.weight_type == "uint8" else "s8") + (" per-channel" if config.per_channel else " per-tensor"))
    if config.reduce_range:
        parts.append("reduce-range")
    if config.transformer_fusion:
        parts.insert(0, "fused")
    return " ".join(parts)
