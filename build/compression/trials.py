"""The ``auto`` search's trials: compress, gate, weigh and time one candidate at a time.

``Trials`` holds one search's working state (the optimized input, calibration readers and
their range caches, the latency feed, the fp32 reference's size and latency, the time budget),
turns a ``recipes.Candidate`` into a ``results.CandidateResult`` (a failing recipe is a row, not
the end of the search), classifies it against the gate and the requirements, and ranks results
by the objective. Which candidates to try and which one to ship is ``auto``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.compression.calibration import ArrayCalibrationReader
from slimserve.build.compression.graph import not_applicable
from slimserve.build.compression.latency import measure, session_for, synthetic_feed
from slimserve.build.compression.methods import compress, optimize
from slimserve.build.compression.recipes import Candidate
from slimserve.build.compression.results import CandidateResult
from slimserve.build.compression.sensitivity import Log, OutputProbe
from slimserve.build.config import BuildConfig, CompressionConfig
from slimserve.build.errors import SlimserveBuildError

LAMBDA_MB_PER_VCPU = 1769  # Lambda gives one vCPU per 1,769 MB of memory
# Objective ties: a candidate this close to the best one counts as equal, and the other
# measure decides (latency noise on a shared machine is a few percent).
LATENCY_TIE = 0.03
SIZE_TIE = 0.01


def lambda_threads(memory_mb: int) -> int:
    """Intra-op threads for the vCPUs Lambda allots to ``memory_mb`` (at least 1), capped by this machine."""
    return max(1, min(round(memory_mb / LAMBDA_MB_PER_VCPU), os.cpu_count() or 1, 6))


def failure_reason(exc: Exception) -> str:
    """One line for a candidate that could not be made or loaded: the exception's own first line,
    without onnxruntime's "[ONNXRuntimeError] : 1 : FAIL : Load model from <path> failed:" preamble."""
    line = (str(exc).strip().splitlines() or [""])[0]
    if "[ONNXRuntimeError]" in line:
        line = line.rsplit("failed:", 1)[-1] if "failed:" in line else line.rsplit(" : ", 1)[-1]
    label = "" if isinstance(exc, (SlimserveBuildError, ValueError)) else f"{type(exc).__name__}: "
    return (label + line.strip())[:200] or type(exc).__name__


class Trials:
    """One search's candidates so far and what evaluating another needs."""

    def __init__(
        self,
        config: BuildConfig,
        evaluator: Any,
        source_model: Path,
        directory: Path,
        log: Log,
        calibration: Mapping[str, np.ndarray] | None,
    ) -> None:
        self.config = config
        self.auto = config.compression.auto
        self.evaluator = evaluator
        self.source_model = source_model
        self.directory = directory
        self.log = log
        self.calibration = calibration
        self.threads = self.auto.threads or lambda_threads(config.runtime.memory_mb)
        self.clock = self.auto.latency_clock if self.threads == 1 else "wall"
        self.started = time.monotonic()
        self.deadline = self.started + self.auto.time_budget_s
        self.results: list[CandidateResult] = []
        self.stopped_by_budget = False
        self._prepared: Path | None = None
        self.probe: OutputProbe | None = None
        self.feed = synthetic_feed(session_for(source_model, 1), self.auto.latency_shape)
        self.fp32_bytes = source_model.stat().st_size
        self.fp32_ms: float | None = None
        self._not_applicable: dict[str, str | None] = {}

    # -- inputs -------------------------------------------------------------------------
    def prepared(self, config: CompressionConfig) -> Path:
        if config.method == "none" or not config.optimize:
            return self.source_model
        if self._prepared is None:
            self._prepared = optimize(self.source_model, self.directory / "optimized.onnx")
        return self._prepared

    def calibration_cache(self, config: CompressionConfig) -> Path | None:
        if config.method != "static-int8":
            return None
        key = json.dumps(
            [str(self.prepared(config)), config.transformer_fusion, config.calibrate_method, config.percentile,
             config.calibration_samples, config.activation_type],
            sort_keys=True,
        )
        return self.directory / f"calibration-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"

    def reader(self, config: CompressionConfig) -> Any:
        return None if self.calibration is None else ArrayCalibrationReader(self.calibration, config.calibration_samples)

    def not_applicable(self, method: str) -> str | None:
        """Why ``method`` cannot shrink the model (cached per method), or None."""
        if method not in self._not_applicable:
            self._not_applicable[method] = not_applicable(self.source_model, method)
        return self._not_applicable[method]

    # -- one candidate ------------------------------------------------------------------
    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def evaluate(self, candidate: Candidate, total: int | None = None) -> CandidateResult:
        result = CandidateResult(len(self.results) + 1, candidate.name, candidate.config, candidate.origin)
        self.results.append(result)
        if self.out_of_time() and candidate.config.method != "none":  # fp32 is weighed whatever the budget
            result.status = "skipped"
            result.reasons = ["time budget"]
            self.stopped_by_budget = True
            return result
        started = time.monotonic()
        path = self.directory / f"candidate-{result.index:02d}.onnx"
        reason = self.not_applicable(candidate.config.method)
        if reason is not None:
            result.status, result.reasons = "skipped", [f"does not apply: {reason}"]
            self._progress(result, total)
            return result
        try:
            result.applied = compress(
                self.prepared(candidate.config), path, candidate.config,
                calibration=self.reader(candidate.config),
                calibration_cache=self.calibration_cache(candidate.config),
            )
            result.path = path
            result.bytes = path.stat().st_size
            result.gate = self.evaluator.gate(path)
        except Exception as exc:  # noqa: BLE001 - one recipe failing (ORT raises Fail, InvalidGraph...; the handler refuses its output) is a table row, not the end of the search
            result.status, result.reasons = "error", [failure_reason(exc)]
            result.seconds = time.monotonic() - started
            self._progress(result, total)
            return result
        try:
            result.latency = measure(
                path, self.feed, threads=self.threads, runs=self.auto.runs, warmup=self.auto.warmup, as_served=True
            )
        except Exception as exc:  # noqa: BLE001 - the gate verdict stands; the row says latency is missing
            result.reasons.append(f"latency not measured: {type(exc).__name__}")
        self.classify(result)
        result.seconds = time.monotonic() - started
        self._progress(result, total)
        return result

    def classify(self, result: CandidateResult) -> None:
        assert result.gate is not None
        reasons = []
        if not result.gate.passed:
            reasons += [f"{check.name} {check.value:.4g} (needs {check.comparison} {check.threshold:.4g})" for check in result.gate.failures]
        requirement = []
        if self.auto.max_size_ratio is not None and result.bytes is not None:
            ratio = result.bytes / self.fp32_bytes
            if ratio > self.auto.max_size_ratio:
                requirement.append(f"size {ratio:.1%} of fp32 (max {self.auto.max_size_ratio:.0%})")
        if self.auto.min_speedup is not None:
            if result.latency is None or not self.fp32_ms:
                requirement.append("speed-up unknown")
            else:
                speedup = self.fp32_ms / result.latency.value(self.clock)
                if speedup < self.auto.min_speedup:
                    requirement.append(f"speed-up {speedup:.2f}x (min {self.auto.min_speedup:g}x)")
        if result.bytes is not None and result.bytes > self.fp32_bytes and result.latency is not None and self.fp32_ms:
            if result.latency.value(self.clock) > self.fp32_ms:
                requirement.append(f"larger ({result.bytes / self.fp32_bytes:.1%}) and slower than fp32")
        result.reasons = reasons + requirement + [r for r in result.reasons if r.startswith("latency not measured")]
        if reasons:
            result.status = "failed gate"
        elif requirement:
            result.status = "failed requirement"
        else:
            result.status = "passed"

    def _progress(self, result: CandidateResult, total: int | None) -> None:
        position = f"[{result.index}/{total}]" if total else f"[{result.index}]"
        parts = [f"{position} {result.name}: {result.status}"]
        if result.gate is not None:
            parts.append(f"{result.gate.metric} {result.gate.candidate:.4f}")
        if result.bytes is not None:
            parts.append(f"{result.bytes / self.fp32_bytes:.1%} of fp32")
        if result.latency is not None and self.fp32_ms:
            parts.append(f"{result.latency.value(self.clock):.3f} ms ({self.fp32_ms / result.latency.value(self.clock):.2f}x)")
        if result.reasons:
            parts.append("; ".join(result.reasons))
        left = max(0.0, self.deadline - time.monotonic())
        self.log(", ".join(parts) + f" [{result.seconds:.1f} s; {left:.0f} s of budget left]")

    # -- choice -------------------------------------------------------------------------
    def objective_key(self, result: CandidateResult) -> tuple[float, float]:
        latency = result.latency.value(self.clock) if result.latency is not None else float("inf")
        size = float(result.bytes or 0)
        return (latency, size) if self.auto.objective == "latency" else (size, latency)

    def best(self, results: list[CandidateResult]) -> CandidateResult | None:
        if not results:
            return None
        primary = min(self.objective_key(r)[0] for r in results)
        tie = LATENCY_TIE if self.auto.objective == "latency" else SIZE_TIE
        close = [r for r in results if self.objective_key(r)[0] <= primary * (1 + tie)]
        return min(close, key=lambda r: (self.objective_key(r)[1], self.objective_key(r)[0]))
