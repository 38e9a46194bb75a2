"""Compression that cannot apply is not pretended: a model without MatMul / Gemm / Conv weights
(tree ensembles, ai.onnx.ml linear models) ships fp32 and the build says why in one line; the
auto search skips such methods, always weighs fp32, rejects what is larger and slower than fp32,
and gives every failed candidate a one-line reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimserve.build.compression.graph import not_applicable
from slimserve.build.compression.latency import Latency
from slimserve.build.compression.results import CandidateResult
from slimserve.build.compression.stage import compress_and_gate
from slimserve.build.compression.trials import Trials, failure_reason
from slimserve.build.config import CompressionConfig, load_config
from slimserve.build.errors import CompressionError, ServeCheckFailed
from slimserve.build.gate.evaluate import evaluator_for
from slimserve.build.gate.reference import Reference
from slimserve.build.gate.validate import GateResult
from slimserve.build.pipeline.progress import Steps
from slimserve.build.pipeline.run import load_source

from localkit import console_text, quiet_console
from zoo import forest

TREES = "the model has no MatMul, Gemm or Conv with constant weights; its parameters are in TreeEnsembleClassifier attributes"


@pytest.fixture(scope="module")
def forest_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("forest")
    forest(folder)
    return folder


def test_which_methods_apply(forest_project: Path, digits_fp32: Path, tmp_path: Path) -> None:
    steps = Steps(quiet_console())
    fp32, _, _ = load_source(load_config(forest_project), tmp_path, steps)
    assert not_applicable(fp32, "dynamic-int8") == TREES
    assert not_applicable(fp32, "fp16") == TREES
    assert not_applicable(digits_fp32, "dynamic-int8") is None
    assert not_applicable(digits_fp32, "matmul-nbits") == "the model has no MatMul with constant weights"  # Gemm only
    assert not_applicable(fp32, "none") is None


def test_a_tree_ensemble_ships_fp32_and_the_build_says_why(forest_project: Path, tmp_path: Path) -> None:
    console = quiet_console()
    steps = Steps(console)
    config = load_config(forest_project)
    fp32, torch_model, served = load_source(config, tmp_path, steps)
    reference = Reference(fp32, torch_model, served.model.input_names, served)
    outcome = compress_and_gate(config, reference, evaluator_for(config, reference), fp32, tmp_path, steps)
    assert outcome.gate.passed
    assert outcome.applied == {"method": "none", "requested": "dynamic-int8", "not_applied": TREES}
    assert outcome.path.stat().st_size == fp32.stat().st_size  # never larger than fp32
    assert f"compression dynamic-int8 does not apply: {TREES}; shipping fp32" in console_text(console)


def test_auto_skips_what_cannot_apply_and_ships_fp32(forest_project: Path, tmp_path: Path) -> None:
    console = quiet_console()
    steps = Steps(console)
    config = load_config(forest_project, {"compression.method": "auto", "compression.auto": {"runs": 10, "warmup": 2}})
    fp32, torch_model, served = load_source(config, tmp_path, steps)
    reference = Reference(fp32, torch_model, served.model.input_names, served)
    outcome = compress_and_gate(config, reference, evaluator_for(config, reference), fp32, tmp_path, steps)
    assert outcome.gate.passed and outcome.applied["auto"]["candidate"] == "fp32 (no compression)"
    text = console_text(console)
    assert "[2/6] dynamic s8 per-channel: skipped, does not apply: " + TREES in text
    assert "[6/6] fp16: skipped, does not apply: " in text


def _trials(fp32_bytes: int, fp32_ms: float) -> Trials:
    trials = object.__new__(Trials)  # classify() reads only these
    trials.auto, trials.fp32_bytes, trials.fp32_ms, trials.clock = CompressionConfig().auto, fp32_bytes, fp32_ms, "cpu"
    return trials


def _result(size: int, ms: float) -> CandidateResult:
    result = CandidateResult(1, "fp16", CompressionConfig(method="fp16"), "built-in")
    result.gate = GateResult("accuracy", 1.0, 1.0, 0.01, 10, [])
    result.bytes = size
    result.latency = Latency(median_ms=ms, p90_ms=ms, mean_ms=ms, runs=10, threads=1, cpu_median_ms=ms)
    return result


def test_auto_never_ships_what_is_larger_and_slower_than_fp32() -> None:
    trials = _trials(fp32_bytes=1000, fp32_ms=1.0)
    larger_and_slower = _result(1017, 1.15)
    trials.classify(larger_and_slower)
    assert larger_and_slower.status == "failed requirement"
    assert larger_and_slower.reasons == ["larger (101.7%) and slower than fp32"]
    for size, ms in ((1017, 0.9), (900, 1.15)):  # larger but faster, or slower but smaller: a trade-off
        result = _result(size, ms)
        trials.classify(result)
        assert result.status == "passed"


@pytest.mark.parametrize(
    "error,reason",
    [
        (RuntimeError("Histogram has not been collected.\n  File x.py, line 3"), "RuntimeError: Histogram has not been collected."),
        (
            ServeCheckFailed(
                "the handler refuses this model: onnxruntime cannot load /tmp/w/model.onnx: [ONNXRuntimeError] : 1 : FAIL : "
                "Load model from /tmp/w/model.onnx failed:Type Error: Type parameter (T) bound to different types"
            ),
            "Type Error: Type parameter (T) bound to different types",
        ),
        (CompressionError("static-int8 needs calibration data"), "static-int8 needs calibration data"),
    ],
)
def test_a_failed_candidate_has_a_one_line_reason(error: Exception, reason: str) -> None:
    assert failure_reason(error) == reason
