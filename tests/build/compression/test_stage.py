"""The compression stage build/pipeline/run.py calls, on the real digits held-out data: the
auto search or a fixed method, gated, with the report sections each adds."""

from __future__ import annotations

from pathlib import Path

from slimserve.build.compression.stage import compress_and_gate, prepare_source
from slimserve.build.config import load_config
from slimserve.build.errors import SearchFailed
from slimserve.build.gate.accuracy import AccuracyEvaluator
from slimserve.build.gate.reference import Reference
from slimserve.build.pipeline.progress import Steps

from repo import EXAMPLES_DIR

DIGITS = EXAMPLES_DIR / "digits"
FAST = {"runs": 10, "warmup": 2}


def _stage(digits_models, tmp_path: Path, model: str, **overrides):
    config = load_config(DIGITS, {"validation.calibration": "data.py:calibration", **overrides})
    reference = Reference(digits_models[model], None, ["pixels"])
    source, manifest_extra, sections = prepare_source(config, reference, tmp_path)
    assert (source, manifest_extra, sections) == (digits_models[model], {}, [])
    outcome = compress_and_gate(config, reference, AccuracyEvaluator(config, reference), source, tmp_path, Steps())
    report = tmp_path / "out" / "report.md"
    report.parent.mkdir()
    report.write_text("# report\n")
    outcome.append_to_report(report)
    return outcome, report


def test_stage_auto_passes_and_extends_the_report(digits_models, tmp_path: Path) -> None:
    outcome, report = _stage(digits_models, tmp_path, "fp32", **{"compression.method": "auto", "compression.auto": {**FAST, "objective": "size"}})
    assert outcome.gate.passed and outcome.failure is None
    assert outcome.path == tmp_path / "compressed.onnx" and outcome.path.is_file()
    assert outcome.applied["selected_by"] == "auto"
    text = report.read_text()
    assert text.startswith("# report\n") and '## Compression search (compression = "auto")' in text
    assert (report.parent / "search.png").is_file()


def test_stage_auto_failure_is_a_search_failed_with_the_table(digits_models, tmp_path: Path) -> None:
    outcome, report = _stage(
        digits_models, tmp_path, "outlier",
        **{"compression.method": "auto", "compression.auto": {**FAST, "candidates": [{"method": "dynamic-int8"}], "max_excluded": 0, "max_size_ratio": 0.5}},
    )
    assert not outcome.gate.passed and isinstance(outcome.failure, SearchFailed)
    assert outcome.path.is_file()  # the closest candidate, for the report's sizes; never bundled
    assert "**No candidate passed: nothing was bundled.**" in report.read_text()


def test_stage_fixed_method_failure_explains_where_accuracy_is_lost(digits_models, tmp_path: Path) -> None:
    outcome, report = _stage(digits_models, tmp_path, "outlier")
    assert not outcome.gate.passed and outcome.failure is None
    assert outcome.applied["method"] == "dynamic-int8"
    text = report.read_text()
    assert "## Sensitivity (leave-one-out: each node kept in fp32 alone)" in text
    assert "| 1 | `/2/Gemm` | Gemm |" in text


def test_stage_fixed_method_pass_has_no_sensitivity_by_default(digits_models, tmp_path: Path) -> None:
    outcome, report = _stage(digits_models, tmp_path, "fp32")
    assert outcome.gate.passed and outcome.applied["per_channel"] is True
    assert report.read_text() == "# report\n"
