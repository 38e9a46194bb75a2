"""Sensitivity analysis on the real digits held-out data: leave-one-out ablation finds the node
whose quantization loses the accuracy (test_qdq.py: qdq_loss_debug finds the tensor).

Failing configuration: int8 on a digits model with one activation outlier (one hidden neuron
x1000, its outgoing weights /1000: the same function in fp32). Passing: the trained model."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slimserve.build.compression.methods import optimize
from slimserve.build.compression.sensitivity import (
    OutputProbe,
    ablation,
    ablation_units,
    gate_margin,
    sensitivity_report,
)
from slimserve.build.config import CompressionConfig, load_config
from slimserve.build.gate.accuracy import AccuracyEvaluator
from slimserve.build.gate.reference import Reference, load_dataset

from repo import REPO_ROOT

DIGITS = REPO_ROOT / "examples" / "digits"


@pytest.fixture(scope="module")
def setup(digits_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("sensitivity")
    config = load_config(DIGITS, {"validation.calibration": "data.py:calibration"})
    fp32, outlier = digits_models["fp32"], digits_models["outlier"]
    return {
        "config": config,
        "calibration": load_dataset(config, "data.py:calibration", "validation.calibration")[0],
        "fp32": optimize(fp32, folder / "fp32-optimized.onnx"),
        "outlier": optimize(outlier, folder / "outlier-optimized.onnx"),
        "fp32_evaluator": AccuracyEvaluator(config, Reference(fp32, None, ["pixels"])),
        "outlier_evaluator": AccuracyEvaluator(config, Reference(outlier, None, ["pixels"])),
    }


def test_ablation_pinpoints_the_node_that_loses_accuracy(setup) -> None:
    report = ablation(setup["outlier"], CompressionConfig(method="dynamic-int8"), setup["outlier_evaluator"])
    assert not report.baseline_passed and report.baseline_margin < -0.5
    assert report.complete and {row.node for row in report.rows} == {"/0/Gemm", "/2/Gemm", "/4/Gemm"}
    top = report.ranked()[0]
    assert top.node == "/2/Gemm" and top.excluded == ["/2/Gemm"] and top.passed
    assert top.gain > 0.5
    assert next(row.node for row in report.helpful()) == "/2/Gemm"
    assert all(not row.passed for row in report.ranked()[1:])
    text = report.markdown()
    assert "| rank | node | op | fp32 bytes | margin if kept fp32 | gain | fidelity gain | gate |" in text
    assert "| 1 | `/2/Gemm` | Gemm | 66,048 |" in text


def test_probe_on_calibration_data_ranks_the_same_node_first(setup) -> None:
    # auto ranks on calibration samples, never on the held-out set the gate judges with
    probe = OutputProbe(setup["outlier"], setup["calibration"])
    assert len(probe.feeds) == 64
    report = ablation(setup["outlier"], CompressionConfig(method="dynamic-int8"), probe=probe)
    assert report.measure == "probe" and report.baseline_margin < 0.9
    top = report.ranked()[0]
    assert top.node == "/2/Gemm" and top.margin > 0.98 and top.passed is None
    assert "min cos if kept fp32 | gain | mean cos gain |" in report.markdown()
    assert "min / mean cosine of the outputs on calibration samples" in report.markdown()


def test_ablation_on_a_model_that_compresses_well_finds_nothing_to_fix(setup) -> None:
    report = ablation(setup["fp32"], CompressionConfig(method="dynamic-int8"), setup["fp32_evaluator"])
    assert report.baseline_passed and report.baseline_margin >= 0
    assert all(row.passed for row in report.rows)
    assert "passes" in report.markdown() and "fails" not in report.markdown().split("\n", 3)[2]


def test_static_units_keep_whole_tensors_fp32(setup) -> None:
    units = {name: group for name, _, group in ablation_units(setup["outlier"], "static-int8")}
    assert units["/2/Gemm"] == ["/2/Gemm", "/1/Relu", "/0/Gemm"]
    assert units["/0/Gemm"] == ["/0/Gemm"]
    report = ablation(
        setup["outlier"], CompressionConfig(method="static-int8", reduce_range=True), setup["outlier_evaluator"],
        calibration=setup["calibration"],
    )
    top = report.ranked()[0]
    assert top.node == "/2/Gemm" and top.passed and top.excluded == ["/2/Gemm", "/1/Relu", "/0/Gemm"]
    assert not report.baseline_passed


def test_sensitivity_report_for_static_has_both_sections(setup) -> None:
    report = sensitivity_report(
        setup["outlier"], CompressionConfig(method="static-int8", reduce_range=True), setup["outlier_evaluator"],
        calibration=setup["calibration"],
    )
    text = report.markdown()
    assert "## Sensitivity (leave-one-out" in text
    assert "### Quantization noise per tensor (onnxruntime qdq_loss_debug" in text
    assert report.to_dict()["rows"][0]["node"] == "/2/Gemm"


def test_ablation_stops_at_the_deadline(setup) -> None:
    report = ablation(
        setup["outlier"], CompressionConfig(method="dynamic-int8"), setup["outlier_evaluator"], deadline=time.monotonic() - 1
    )
    assert not report.complete and report.rows == []
    assert "(stopped by the time budget: partial)" in report.markdown()


def test_gate_margin_is_the_worst_check_slack(setup) -> None:
    gate = setup["fp32_evaluator"].gate(setup["fp32"])
    assert gate.passed and gate_margin(gate) == pytest.approx(0.01, abs=1e-9)
