"""The auto search's candidate lists: which recipes are tried for which model, that each keeps
the user's own [compression] settings, and the names the candidate table shows."""

from __future__ import annotations

from slimserve.build.compression.recipes import (
    default_candidates,
    describe,
    user_candidates,
    variant,
)
from slimserve.build.config import AutoConfig, CandidateConfig, CompressionConfig

DYNAMIC = ["dynamic s8 per-channel", "dynamic s8 per-channel reduce-range", "dynamic u8 per-channel", "dynamic s8 per-tensor"]
STATIC = [
    "static MinMax per-channel", "static MinMax per-channel reduce-range", "static Entropy per-channel reduce-range",
    "static Percentile 99.999 per-channel reduce-range",
]


def _names(candidates) -> list[str]:
    return [candidate.name for candidate in candidates]


def test_default_candidates_follow_the_model_and_the_data() -> None:
    base = CompressionConfig(method="auto", nodes_to_exclude=["/4/Gemm"], auto=AutoConfig(objective="size"))
    plain = default_candidates(base, calibration=False, transformer=False)
    assert _names(plain) == [*DYNAMIC, "fp16"]
    everything = default_candidates(base, calibration=True, transformer=True, matmul_weights=True)
    assert _names(everything) == [
        *DYNAMIC, *[f"fused {name}" for name in DYNAMIC[:3]], "fp16",
        "matmul-nbits int8 block 32", "matmul-nbits int4 block 32", *STATIC,
    ]
    assert {candidate.origin for candidate in everything} == {"built-in"}
    for candidate in everything:
        # the user's exclusions stay; the candidate has no search settings of its own
        assert candidate.config.nodes_to_exclude == ["/4/Gemm"] and candidate.config.auto == AutoConfig()
    # the dynamic and MatMulNBits names are what describe() calls those settings
    for candidate in everything[:7] + everything[8:10]:
        assert describe(candidate.config) == candidate.name


def test_an_encoder_gets_per_token_int8() -> None:
    """per-token-int8 joins the search for BERT-family encoders, as an unfused s8 recipe
    whatever the section says (its own config check would refuse those keys)."""
    base = CompressionConfig(method="auto", weight_type="uint8", op_types_to_quantize=["MatMul"], transformer_fusion="bert")
    candidates = default_candidates(base, calibration=False, transformer=True, encoder=True)
    assert _names(candidates) == [*DYNAMIC, "per-token int8", "fp16"]
    config = candidates[len(DYNAMIC)].config
    assert (config.method, config.weight_type, config.transformer_fusion, config.op_types_to_quantize) == ("per-token-int8", "int8", None, None)
    assert (config.per_channel, config.reduce_range) == (True, False)
    assert describe(config) == "per-token int8"
    assert describe(variant(config, reduce_range=True)) == "per-token int8 reduce-range"
    assert "per-token int8" not in _names(default_candidates(base, calibration=False, transformer=True))


def test_a_fused_model_gets_no_fused_variants_again() -> None:
    base = CompressionConfig(method="auto", transformer_fusion="bert")
    assert _names(default_candidates(base, calibration=False, transformer=True)) == [*DYNAMIC, "fp16"]


def test_user_candidates_inherit_the_section_and_are_named() -> None:
    base = CompressionConfig(
        method="auto",
        per_channel=True,
        auto=AutoConfig(candidates=[CandidateConfig(method="dynamic-int8", reduce_range=True), CandidateConfig(method="fp16", name="half")]),
    )
    candidates = user_candidates(base)
    assert [(c.name, c.origin) for c in candidates] == [("dynamic s8 per-channel reduce-range", "user"), ("half", "user")]
    assert candidates[0].config.per_channel and candidates[0].config.method == "dynamic-int8"


def test_describe_names_every_method() -> None:
    assert describe(variant(CompressionConfig(), method="none")) == "none (fp32)"
    assert describe(CompressionConfig(method="matmul-nbits", bits=4, block_size=64)) == "matmul-nbits int4 block 64"
    assert describe(CompressionConfig(method="dynamic-int8", weight_type="uint8", per_channel=False)) == "dynamic u8 per-tensor"
    assert describe(CompressionConfig(method="dynamic-int8", transformer_fusion="bert")) == "fused dynamic s8 per-channel"
