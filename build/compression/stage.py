"""The pipeline's compression stage: what ``build/pipeline/run.py`` calls between the export
and the manifest.

- ``prepare_source``: ``[prune]`` / ``[distill]`` before compression (the fp32 model to compress);
- ``compress_and_gate``: optimize -> compress -> gate for a fixed method (plus a sensitivity
  table when asked or when the gate fails), or the ``auto`` search; a ``StageOutcome`` carries
  the compressed model, the manifest's ``compression``, the gate's verdict and the report's extra
  sections.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from slimserve.build.compression import distill, prune
from slimserve.build.compression.auto import load_calibration, run_search
from slimserve.build.compression.graph import not_applicable
from slimserve.build.compression.methods import compress, optimize
from slimserve.build.compression.results import PLOT_FILE, SearchResult
from slimserve.build.compression.sensitivity import Log, sensitivity_report
from slimserve.build.compression.trials import lambda_threads
from slimserve.build.config import BuildConfig
from slimserve.build.errors import CompressionError, SearchFailed, SlimserveBuildError
from slimserve.build.gate.reference import Reference
from slimserve.build.gate.validate import GateResult
from slimserve.build.pipeline.export import export_onnx
from slimserve.build.units import format_bytes

T = TypeVar("T")


@dataclass
class StageOutcome:
    """What the compression stage produced, for the pipeline's manifest and report."""

    path: Path  # work/compressed.onnx (on failure: the closest candidate, for the report's sizes)
    applied: dict[str, Any]  # the manifest's ``compression``
    gate: GateResult
    failure: Exception | None = None  # a SearchFailed (a GateFailed): raise it instead of GateFailed(gate)
    sections: list[str] = field(default_factory=list)  # markdown appended to report.md
    files: dict[str, Path] = field(default_factory=dict)  # copied beside report.md (search.png)

    def append_to_report(self, report: Path) -> None:
        for name, path in self.files.items():
            if path.is_file() and path.resolve() != (report.parent / name).resolve():
                shutil.copyfile(path, report.parent / name)
        if self.sections:
            with report.open("a", encoding="utf-8") as handle:
                for section in self.sections:
                    handle.write("\n" + section)


def prepare_source(
    config: BuildConfig, reference: Reference, work: Path, log: Log | None = None
) -> tuple[Path, dict[str, Any], list[str]]:
    """[prune] / [distill] before compression: returns (the fp32 ONNX model to compress, what
    to add to the manifest's ``compression``, report sections). Without either section the
    export itself is returned. The gate's reference stays the original model either way."""
    log = log or (lambda message: None)
    if config.prune is None and config.distill is None:
        return reference.fp32_path, {}, []
    threads = config.compression.auto.threads or lambda_threads(config.runtime.memory_mb)
    if config.prune is not None:
        if reference.torch_model is None:  # the config check makes this unreachable from slimserve.toml
            raise CompressionError("prune: pruning needs the PyTorch model (source.module)")
        pruned, report = prune.prune_for_build(config, reference.torch_model, log=log)
        path = export_onnx(pruned, config.export, work / "pruned.onnx")
        effect = prune.lambda_effect(reference.fp32_path, path, threads=threads, free_dims=config.compression.auto.latency_shape)
        log(
            f"pruned model: {format_bytes(effect['after']['zipped_bytes'])} zipped "
            f"({effect['zipped_ratio']:.0%} of the original), latency x{effect['latency_ratio']:.2f}"
        )
        return path, {"prune": {**report, "lambda": effect}}, [prune.markdown(report, effect)]
    student, report = distill.distill(config, reference, log=log)
    path = export_onnx(student, config.export, work / "student.onnx")
    report["student_onnx_bytes"] = path.stat().st_size
    report["teacher_onnx_bytes"] = reference.fp32_path.stat().st_size
    return path, {"distill": report}, [distill.markdown(report)]


def compress_and_gate(
    config: BuildConfig,
    reference: Reference,
    evaluator: Any,
    source_model: Path,
    work: Path,
    steps: Any,
) -> StageOutcome:
    """optimize -> compress -> gate for a fixed method (plus a sensitivity table when asked or
    when the gate fails), or the ``auto`` search. ``steps`` is slimserve.build.pipeline.progress.Steps. Never
    raises on a failed gate: the caller writes the report, then raises ``outcome.failure or
    GateFailed(outcome.gate)``."""
    compression = config.compression
    compressed = work / "compressed.onnx"
    if compression.method == "auto":
        with steps.step("search", f"auto compression, objective {compression.auto.objective}, budget {compression.auto.time_budget_s:.0f} s") as step:
            try:
                result = run_search(config, reference, evaluator, source_model, work, log=steps.log)
            except SearchFailed as failed:
                step.fail("no candidate passed the gate")
                closest = failed.result.closest()
                shutil.copyfile(closest.path if closest is not None and closest.path else source_model, compressed)
                return StageOutcome(
                    compressed, {"method": "auto", "selected_by": "auto", "chosen": None}, failed.gate, failed,
                    [failed.result.markdown()], _plot_files(failed.result),
                )
        shutil.copyfile(result.chosen_path, compressed)
        steps.log(result.chosen_gate.explain())
        return StageOutcome(compressed, result.applied, result.chosen_gate, None, [result.markdown()], _plot_files(result))

    skipped = not_applicable(source_model, compression.method)
    if skipped is not None:
        steps.log(f"compression {compression.method} does not apply: {skipped}; shipping fp32")
        compression = compression.model_copy(update={"method": "none"})
    calibration = None
    if compression.method == "static-int8" or (compression.sensitivity != "off" and compression.method != "none"):
        calibration = load_calibration(config, list(reference.input_names))
    candidate_input = source_model
    if compression.optimize and compression.method != "none":
        with steps.step("optimize", "shape inference + onnxruntime graph optimizations"):
            candidate_input = _typed(lambda: optimize(source_model, work / "optimized.onnx"), "optimize")
    with steps.step("compress", compression.method):
        applied = _typed(lambda: compress(candidate_input, compressed, compression, calibration=calibration), compression.method)
    if skipped is not None:
        applied.update(requested=config.compression.method, not_applied=skipped)
    ratio = compressed.stat().st_size / source_model.stat().st_size
    if compression.method != "none" and ratio > 1:
        steps.log(f"note: {compression.method} made the model larger than fp32 ({ratio:.1%} of its size)")
        applied["larger_than_fp32"] = round(ratio, 4)
    with steps.step("validate", f"accuracy gate on held-out data ({config.validation.data})") as step:
        gate = evaluator.gate(compressed)
        if not gate.passed:
            gate.lost_in = _step_that_lost_accuracy(config, evaluator, source_model, reference)
            step.fail(f"gate FAILED, accuracy lost in {gate.lost_in}")
        steps.log(gate.explain())
    sections: list[str] = []
    wanted = compression.sensitivity == "always" or (compression.sensitivity == "on-failure" and not gate.passed)
    if wanted and compression.method != "none":
        with steps.step("sensitivity", f"which nodes lose accuracy (leave-one-out, budget {compression.sensitivity_budget_s:.0f} s)"):
            report = sensitivity_report(
                candidate_input, compression, evaluator, calibration=calibration,
                budget_s=compression.sensitivity_budget_s, log=steps.log,
            )
            top = report.helpful()[:3]
            if top:
                steps.log("most sensitive: " + ", ".join(row.node for row in top) + " (see report.md; compression.nodes_to_exclude keeps them fp32)")
            sections.append(report.markdown())
    return StageOutcome(compressed, applied, gate, None, sections)


def _step_that_lost_accuracy(config: BuildConfig, evaluator: Any, source_model: Path, reference: Reference) -> str:
    """Which step a failed gate's advice should name: when [prune] or [distill] made the model
    that was compressed and that model fails the gate on its own, the loss happened there."""
    if source_model == reference.fp32_path or (config.prune is None and config.distill is None):
        return "compress"
    if evaluator.gate(source_model).passed:
        return "compress"
    return "prune" if config.prune is not None else "distill"


def _typed(step: Callable[[], T], what: str) -> T:
    """Run one of onnxruntime's tools; what it raises becomes one CompressionError line."""
    try:
        return step()
    except SlimserveBuildError:
        raise
    except Exception as exc:  # onnxruntime's tools raise ValueError, RuntimeError, Fail...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CompressionError(f"{what} failed on this model: {type(exc).__name__}: {first}") from exc


def _plot_files(result: SearchResult) -> dict[str, Path]:
    return {PLOT_FILE: result.plot_path} if result.plot_path is not None else {}
