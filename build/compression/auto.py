"""``compression.method = "auto"``: search compression recipes, ship the best one that passes.

A bounded list of candidates (methods x options, then the most sensitive nodes kept in fp32)
is compressed, gated by the same evaluator as any build, weighed (bytes) and timed on this
machine at the configured thread count. Among the candidates that pass the gate and the
optional requirements (``max_size_ratio``, ``min_speedup``) the objective (latency or size)
picks one; the final latencies of the finalists and the fp32 reference are measured again,
interleaved, so background load hits them alike. If nothing passes, ``SearchFailed`` carries
the full table: a model that fails its gate is never returned, and nothing the user did not
ask for (fp32, "none") is ever substituted.

    result = run_search(config, reference, evaluator, fp32_path, work, log=steps.log)
    result.chosen_path, result.chosen_gate, result.applied, result.table, result.plot_path
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.compression.latency import (
    Latency,
    compare,
    cpu_summary,
    measure,
    session_for,
    synthetic_feed,
)
from slimserve.build.compression.methods import (
    ArrayCalibrationReader,
    compress,
    looks_like_transformer,
    optimize,
    quantizable_nodes,
)
from slimserve.build.compression.sensitivity import (
    OutputProbe,
    SensitivityReport,
    ablation,
    gate_score,
)
from slimserve.build.config import BuildConfig, CompressionConfig
from slimserve.build.errors import CompressionError, SearchFailed
from slimserve.build.gate.reference import Reference, load_dataset
from slimserve.build.gate.validate import GateResult

Log = Callable[[str], None]
SEARCH_DIR = "search"
PLOT_FILE = "search.png"
MARKDOWN_FILE = "search.md"
LAMBDA_MB_PER_VCPU = 1769  # Lambda gives one vCPU per 1,769 MB of memory
# Objective ties: a candidate this close to the best one counts as equal, and the other
# measure decides (latency noise on a shared machine is a few percent).
LATENCY_TIE = 0.03
SIZE_TIE = 0.01
MAX_FAMILY_BASES = 2

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


@dataclass
class CandidateResult:
    index: int
    name: str
    config: CompressionConfig
    origin: str
    status: str = "pending"  # baseline | passed | failed gate | failed requirement | error | skipped
    reasons: list[str] = field(default_factory=list)
    path: Path | None = None
    applied: dict[str, Any] | None = None
    gate: GateResult | None = None
    bytes: int | None = None
    latency: Latency | None = None
    seconds: float = 0.0
    chosen: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def ms(self, clock: str) -> float | None:
        return None if self.latency is None else self.latency.value(clock)

    def row(self, reference_bytes: int, reference_ms: float | None, clock: str = "wall") -> dict[str, Any]:
        return {
            "index": self.index,
            "candidate": self.name,
            "origin": self.origin,
            "method": self.config.method,
            "status": "chosen" if self.chosen else self.status,
            "reasons": list(self.reasons),
            "gate_passed": None if self.gate is None else self.gate.passed,
            "metric": None if self.gate is None else self.gate.metric,
            "metric_value": None if self.gate is None else self.gate.candidate,
            "checks": {} if self.gate is None else {check.name: check.value for check in self.gate.checks},
            "bytes": self.bytes,
            "size_ratio": None if self.bytes is None else self.bytes / reference_bytes,
            "latency_ms": self.ms(clock),
            "wall_ms": None if self.latency is None else self.latency.median_ms,
            "p90_ms": None if self.latency is None else self.latency.p90_ms,
            "cpu_ms": None if self.latency is None else self.latency.cpu_median_ms,
            "speedup": None if self.latency is None or not reference_ms else reference_ms / self.ms(clock),
            "applied": self.applied,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class SearchResult:
    objective: str
    clock: str
    threads: int
    latency_shape: list[int]
    baseline: CandidateResult
    results: list[CandidateResult]
    chosen: CandidateResult | None
    seconds: float
    stopped_by_budget: bool
    cpu: str
    sensitivity: list[SensitivityReport] = field(default_factory=list)
    plot_path: Path | None = None
    markdown_path: Path | None = None
    requirements: dict[str, float] = field(default_factory=dict)

    @property
    def chosen_path(self) -> Path:
        assert self.chosen is not None and self.chosen.path is not None
        return self.chosen.path

    @property
    def chosen_gate(self) -> GateResult:
        assert self.chosen is not None and self.chosen.gate is not None
        return self.chosen.gate

    @property
    def applied(self) -> dict[str, Any]:
        """The manifest's ``compression``: what the chosen candidate applied, plus how it was chosen."""
        assert self.chosen is not None and self.chosen.applied is not None
        row = self.chosen.row(self.reference_bytes, self.reference_ms, self.clock)
        return {
            **self.chosen.applied,
            "selected_by": "auto",
            "auto": {
                "candidate": self.chosen.name,
                "objective": self.objective,
                "clock": self.clock,
                "threads": self.threads,
                "latency_shape": self.latency_shape,
                "latency_ms": row["latency_ms"],
                "reference_latency_ms": self.reference_ms,
                "speedup": row["speedup"],
                "size_ratio": row["size_ratio"],
                "tried": sum(1 for r in self.results if r.status != "skipped"),
                "passed": sum(1 for r in self.results if r.passed),
                "cpu": self.cpu,
            },
        }

    @property
    def reference_bytes(self) -> int:
        assert self.baseline.bytes is not None
        return self.baseline.bytes

    @property
    def reference_ms(self) -> float | None:
        return self.baseline.ms(self.clock)

    @property
    def table(self) -> list[dict[str, Any]]:
        return [r.row(self.reference_bytes, self.reference_ms, self.clock) for r in [self.baseline, *self.results]]

    def closest(self) -> CandidateResult | None:
        gated = [r for r in self.results if r.gate is not None]
        return max(gated, key=lambda r: gate_score(r.gate)) if gated else None

    def markdown(self, plot_name: str | None = PLOT_FILE) -> str:
        chosen = self.chosen
        lines = [
            '## Compression search (compression = "auto")',
            "",
            f"Objective: **{self.objective}**; latency = median of `session.run` at batch shape "
            f"{self.latency_shape}, {self.threads} intra-op thread(s), on {self.cpu}; speed-ups on the "
            f"{'calling thread CPU time' if self.clock == 'cpu' else 'wall clock'}. "
            f"{len([r for r in self.results if r.status != 'skipped'])} candidates tried in {self.seconds:.0f} s"
            + (" (stopped by the time budget)" if self.stopped_by_budget else "")
            + ".",
        ]
        if self.requirements:
            lines.append("Requirements besides the gate: " + ", ".join(f"{k} {v}" for k, v in self.requirements.items()) + ".")
        lines.append(
            f"Chosen: **{chosen.name}**." if chosen else "**No candidate passed: nothing was bundled.**"
        )
        lines += ["", *markdown_table(self.table), ""]
        if plot_name and self.plot_path is not None:
            lines += [f"![metric vs latency, marker area = size]({plot_name})", ""]
        for report in self.sensitivity:
            lines += [report.markdown()]
        return "\n".join(lines) + "\n"


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown_table(rows: list[dict[str, Any]], *, short: bool = False) -> list[str]:
    check_names: list[str] = []
    for row in rows:
        check_names += [name for name in row["checks"] if name not in check_names]
    metric = next((row["metric"] for row in rows if row["metric"]), "metric")
    header = ["#", "candidate", "result", metric, *check_names, "size", "vs fp32", "median ms", "p90 ms", "CPU ms", "speed-up"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        reasons = row["reasons"]
        if short and len(reasons) > 1:
            reasons = [f"{reasons[0]} (+{len(reasons) - 1} more)"]
        result = row["status"] + (f": {'; '.join(reasons)}" if reasons else "")
        size = "" if row["bytes"] is None else (
            f"{row['bytes'] / 1048576:.2f} MB" if row["bytes"] >= 1048576 else f"{row['bytes'] / 1024:.1f} KB"
        )
        cells = [
            str(row["index"]),
            f"**{row['candidate']}**" if row["status"] == "chosen" else row["candidate"],
            result,
            _fmt(row["metric_value"], ".4f"),
            *[_fmt(row["checks"].get(name), ".4f") for name in check_names],
            size,
            _fmt(row["size_ratio"], ".1%"),
            _fmt(row["wall_ms"], ".4g"),
            _fmt(row["p90_ms"], ".4g"),
            _fmt(row["cpu_ms"], ".4g"),
            "" if row["speedup"] is None else f"{row['speedup']:.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def text_table(rows: list[dict[str, Any]]) -> str:
    """The table for a terminal / exception message: fixed-width columns."""
    lines = markdown_table(rows, short=True)
    cells = [[cell.strip().replace("**", "") for cell in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def lambda_threads(memory_mb: int) -> int:
    """Intra-op threads for the vCPUs Lambda allots to ``memory_mb`` (at least 1), capped by this machine."""
    return max(1, min(round(memory_mb / LAMBDA_MB_PER_VCPU), os.cpu_count() or 1, 6))


def load_calibration(config: BuildConfig, input_names: list[str]) -> dict[str, np.ndarray] | None:
    """validation.calibration as the model's input arrays (tokenized for the embedding task)."""
    if config.validation.calibration is None:
        return None
    if config.task == "embedding":
        from slimserve.build.gate.embedding import calibration_feeds

        return calibration_feeds(config, input_names)
    return load_dataset(config, config.validation.calibration, "validation.calibration")[0]


def _variant(base: CompressionConfig, **update: Any) -> CompressionConfig:
    return base.model_copy(update={**update, "auto": type(base.auto)()})


def default_candidates(
    base: CompressionConfig, *, calibration: bool, transformer: bool, matmul_weights: bool = False
) -> list[Candidate]:
    """The built-in search space. Every candidate keeps the user's own nodes_to_exclude /
    op_types_to_exclude / fusion settings; the sensitivity step adds exclusions later."""
    candidates = [
        Candidate(name, _variant(base, method="dynamic-int8", **options)) for name, options in DYNAMIC_RECIPES
    ]
    if transformer and base.transformer_fusion is None:
        candidates += [
            Candidate(f"fused {name}", _variant(base, method="dynamic-int8", transformer_fusion="bert", **options))
            for name, options in DYNAMIC_RECIPES[:3]
        ]
    candidates.append(Candidate("fp16", _variant(base, method="fp16")))
    if matmul_weights:
        candidates += [
            Candidate(name, _variant(base, method="matmul-nbits", per_channel=True, **options)) for name, options in NBITS_RECIPES
        ]
    if calibration:
        for name, options in STATIC_RECIPES:
            options = {"per_channel": True, "percentile": None, "activation_type": "uint8", "weight_type": "int8", **options}
            candidates.append(Candidate(name, _variant(base, method="static-int8", **options)))
    return candidates


def describe(config: CompressionConfig) -> str:
    if config.method == "fp16":
        return "fp16"
    if config.method == "matmul-nbits":
        return f"matmul-nbits int{config.bits} block {config.block_size}"
    if config.method == "none":
        return "none (fp32)"
    parts = [config.method.removesuffix("-int8")]
    if config.method == "static-int8":
        parts.append(config.calibrate_method)
    parts.append(("u8" if config.weight_type == "uint8" else "s8") + (" per-channel" if config.per_channel else " per-tensor"))
    if config.reduce_range:
        parts.append("reduce-range")
    if config.transformer_fusion:
        parts.insert(0, "fused")
    return " ".join(parts)


class _Search:
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
        self._feed = synthetic_feed(session_for(source_model, 1), self.auto.latency_shape)
        self.fp32_bytes = source_model.stat().st_size
        self.fp32_ms: float | None = None

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

    # -- one candidate ------------------------------------------------------------------
    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def evaluate(self, candidate: Candidate, total: int | None = None) -> CandidateResult:
        result = CandidateResult(len(self.results) + 1, candidate.name, candidate.config, candidate.origin)
        self.results.append(result)
        if self.out_of_time():
            result.status = "skipped"
            result.reasons = ["time budget"]
            self.stopped_by_budget = True
            return result
        started = time.monotonic()
        path = self.directory / f"candidate-{result.index:02d}.onnx"
        try:
            result.applied = compress(
                self.prepared(candidate.config), path, candidate.config,
                calibration=self.reader(candidate.config),
                calibration_cache=self.calibration_cache(candidate.config),
            )
        except Exception as exc:  # noqa: BLE001 - one recipe failing (ORT raises Fail, InvalidGraph...) is a table row, not the end of the search
            first_line = (str(exc).splitlines() or [""])[0][:160]
            label = "" if isinstance(exc, (CompressionError, ValueError)) else f"{type(exc).__name__}: "
            result.status, result.reasons = "error", [label + first_line]
            result.seconds = time.monotonic() - started
            self._progress(result, total)
            return result
        result.path = path
        result.bytes = path.stat().st_size
        result.gate = self.evaluator.gate(path)
        try:
            result.latency = measure(path, self._feed, threads=self.threads, runs=self.auto.runs, warmup=self.auto.warmup)
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


def run_search(
    config: BuildConfig,
    reference: Reference,
    evaluator: Any,
    source_model: Path,
    work: Path,
    log: Log | None = None,
    *,
    calibration: Mapping[str, np.ndarray] | None = None,
) -> SearchResult:
    """Search, choose, write ``work/search/search.md`` + ``search.png``; raise SearchFailed
    (with the table) when no candidate passes. ``source_model``: the fp32 ONNX model to
    compress (the export, or a pruned / distilled export), also the latency and size baseline.
    ``calibration``: the model's input arrays for static int8 (default: validation.calibration)."""
    log = log or (lambda message: None)
    auto = config.compression.auto
    directory = work / SEARCH_DIR
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    if calibration is None:
        calibration = load_calibration(config, list(reference.input_names))
    search = _Search(config, evaluator, source_model, directory, log, calibration)
    base = config.compression

    baseline = CandidateResult(0, "fp32 (reference, not eligible)", _variant(base, method="none"), "reference", status="baseline")
    baseline.path, baseline.bytes = source_model, search.fp32_bytes
    baseline.gate = evaluator.gate(source_model)
    baseline.latency = measure(source_model, search._feed, threads=search.threads, runs=auto.runs, warmup=auto.warmup)
    search.fp32_ms = baseline.latency.value(search.clock)
    log(f"fp32 reference: {search.fp32_bytes / 1024:.1f} KB, {baseline.latency}")

    if auto.candidates is not None:
        candidates = [Candidate(c.name or describe(base.candidate(c)), base.candidate(c), "user") for c in auto.candidates]
    else:
        transformer = looks_like_transformer(source_model)
        matmuls = any(op == "MatMul" for _, op in quantizable_nodes(source_model, "dynamic-int8"))
        candidates = default_candidates(
            base, calibration=calibration is not None, transformer=transformer, matmul_weights=matmuls
        )
        if calibration is None:
            log("static int8 candidates left out: no validation.calibration data")
    for candidate in candidates:
        search.evaluate(candidate, total=len(candidates))

    sensitivity: list[SensitivityReport] = []
    if auto.sensitivity and auto.max_excluded > 0 and not search.out_of_time():
        sensitivity = _exclusion_family(search)

    stopped = search.stopped_by_budget
    finalists = [r for r in search.results if r.passed]
    if finalists:
        _final_timing(search, baseline, finalists)
    chosen = search.best([r for r in search.results if r.passed])
    if chosen is not None:
        chosen.chosen = True
    result = SearchResult(
        objective=auto.objective,
        clock=search.clock,
        threads=search.threads,
        latency_shape=list(auto.latency_shape),
        baseline=baseline,
        results=search.results,
        chosen=chosen,
        seconds=time.monotonic() - search.started,
        stopped_by_budget=stopped or search.stopped_by_budget,
        cpu=cpu_summary(),
        sensitivity=sensitivity,
        requirements={
            key: value
            for key, value in (("max_size_ratio", auto.max_size_ratio), ("min_speedup", auto.min_speedup))
            if value is not None
        },
    )
    # Candidates are large for real models: keep only the chosen one (or, on failure, the
    # closest, whose size the failed build's report shows).
    keep = chosen if chosen is not None else result.closest()
    for r in search.results:
        if r.path is not None and r is not keep:
            r.path.unlink(missing_ok=True)
            r.path = None
    result.plot_path = write_pareto_plot(directory / PLOT_FILE, result, name=config.name)
    result.markdown_path = directory / MARKDOWN_FILE
    result.markdown_path.write_text(result.markdown(), encoding="utf-8")
    (directory / "search.json").write_text(json.dumps(result.table, indent=2, default=str), encoding="utf-8")
    if chosen is None:
        closest = result.closest()
        hint = (
            f"Closest: {closest.name}: " + "; ".join(check.explain() for check in closest.gate.failures) + ".\n"
            if closest is not None and closest.gate is not None and closest.gate.failures
            else ""
        )
        raise SearchFailed(
            result,
            f"auto compression found no candidate that passes the accuracy gate"
            f"{' and the requirements' if result.requirements else ''}: "
            f"{len([r for r in result.results if r.status != 'skipped'])} tried in {result.seconds:.0f} s"
            f"{' (time budget reached)' if result.stopped_by_budget else ''}. Nothing was bundled.\n"
            f"{text_table(result.table)}\n{hint}"
            "Loosen the validation thresholds only if that loss is acceptable; otherwise raise "
            "compression.auto.time_budget_s or max_excluded, add candidates, or choose a method.",
        )
    log(f"chosen: {chosen.name} ({result.applied['auto']['size_ratio']:.1%} of fp32, "
        f"{result.applied['auto']['latency_ms']:.3f} ms, {result.applied['auto']['speedup']:.2f}x)")
    return result


def _exclusion_family(search: _Search) -> list[SensitivityReport]:
    """Keep the most sensitive nodes of the most promising failing int8 recipes in fp32, one
    more at a time, until one passes (or stops being able to beat the best passing candidate).
    Up to MAX_FAMILY_BASES recipes (of different methods), closest to passing first."""
    passing = [r for r in search.results if r.passed]
    best_passing = search.best(passing)
    best_key = search.objective_key(best_passing)[0] if best_passing else float("inf")
    bases = sorted(
        (
            r for r in search.results
            if r.status == "failed gate" and r.config.method in ("dynamic-int8", "static-int8", "matmul-nbits")
            and not any(reason.startswith(("size", "speed-up")) for reason in r.reasons)
            and search.objective_key(r)[0] < best_key
        ),
        key=lambda r: gate_score(r.gate),
        reverse=True,
    )
    chosen_bases: list[CandidateResult] = []
    for r in bases:
        if r.config.method not in {b.config.method for b in chosen_bases}:
            chosen_bases.append(r)
    reports: list[SensitivityReport] = []
    for base in chosen_bases[:MAX_FAMILY_BASES]:
        if search.out_of_time() or search.objective_key(base)[0] >= best_key:
            continue
        search.log(f"sensitivity: leave-one-out on {base.name} to find the nodes that lose accuracy")
        if search.probe is None and search.calibration is not None:
            search.probe = OutputProbe(search.prepared(base.config), search.calibration)
        if search.probe is None:
            search.log("sensitivity: no validation.calibration data, so the held-out gate ranks the nodes")
        report = ablation(
            search.prepared(base.config), base.config, search.evaluator,
            probe=search.probe,
            calibration=search.reader(base.config),
            calibration_cache=search.calibration_cache(base.config),
            deadline=search.deadline,
            log=search.log,
            baseline=(base.applied or {}, base.path) if base.path is not None else None,
        )
        report.label = base.name
        reports.append(report)
        helpful = report.helpful()
        if not helpful:
            search.log(f"sensitivity: keeping no single node of {base.name} in fp32 improves it")
        excluded: list[str] = list(base.config.nodes_to_exclude)
        size_budget = None if search.auto.max_size_ratio is None else search.auto.max_size_ratio * search.fp32_bytes
        current_bytes, count = float(base.bytes or 0), 0
        for row in helpful:
            if count >= search.auto.max_excluded:
                break
            # keeping a node fp32 costs ~3/4 of its fp32 weight bytes over int8: skip what cannot fit
            if size_budget is not None and current_bytes + 0.75 * row.fp32_bytes > size_budget:
                search.log(f"sensitivity: {row.node} would not fit max_size_ratio; trying the next node")
                continue
            count += 1
            excluded += [name for name in row.excluded if name not in excluded]
            config = base.config.model_copy(update={"nodes_to_exclude": list(excluded)})
            name = f"{base.name} + top {count} sensitive fp32"
            result = search.evaluate(Candidate(name, config, "sensitivity"))
            current_bytes = float(result.bytes or current_bytes)
            if result.status in ("skipped", "failed requirement", "error"):
                break
            if result.passed:
                best_key = min(best_key, search.objective_key(result)[0])
                break
            if search.objective_key(result)[0] >= best_key:
                break
    return reports


def _final_timing(search: _Search, baseline: CandidateResult, finalists: list[CandidateResult]) -> None:
    """Re-time the finalists and fp32 interleaved; their latencies and speed-ups become these."""
    models = {"fp32": baseline.path, **{str(r.index): r.path for r in finalists}}
    search.log(f"final timing: {len(finalists)} passing candidate(s) and fp32, interleaved")
    timings = compare(
        models, search._feed, threads=search.threads, runs=search.auto.runs * 2, warmup=search.auto.warmup, rounds=5,
    )
    baseline.latency = timings["fp32"]
    search.fp32_ms = baseline.latency.value(search.clock)
    for result in finalists:
        result.latency = timings[str(result.index)]
        search.classify(result)


def write_pareto_plot(path: Path, result: SearchResult, *, name: str) -> Path:
    """Metric vs latency, one marker per candidate (area ~ size), passing ones in blue, the
    chosen one starred, the Pareto front of passing candidates drawn, fp32 in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def metric_of(gate: GateResult) -> float:
        cosines = [check.value for check in gate.checks if check.name.startswith("min cosine")]
        return min(cosines) if cosines else gate.candidate

    first_gate = next((r.gate for r in [result.baseline, *result.results] if r.gate is not None), None)
    metric_label = "min cosine (worst run)" if first_gate and any(
        c.name.startswith("min cosine") for c in first_gate.checks
    ) else (first_gate.metric if first_gate else "metric")
    figure, axis = plt.subplots(figsize=(8.5, 5.2))
    sizes = [r.bytes for r in [result.baseline, *result.results] if r.bytes]
    largest = max(sizes) if sizes else 1
    points = []
    for r in [result.baseline, *result.results]:
        if r.gate is None or r.latency is None or r.bytes is None:
            continue
        x, y = r.latency.value(result.clock), metric_of(r.gate)
        area = 40 + 460 * r.bytes / largest
        if r.status == "baseline":
            color, label = "#888888", "fp32 reference"
        elif r.passed:
            color, label = "#2a7ab0", "passes"
        elif r.status == "failed requirement":
            color, label = "#e69f00", "passes gate, misses a requirement"
        else:
            color, label = "#c0392b", "fails gate"
        axis.scatter([x], [y], s=area, c=color, alpha=0.6, edgecolors="black", linewidths=0.5, label=label)
        if r.chosen:
            axis.scatter([x], [y], s=area * 2.2, marker="*", c="gold", edgecolors="black", linewidths=0.8, label="chosen", zorder=5)
        axis.annotate(str(r.index), (x, y), fontsize=7, ha="center", va="center", zorder=6)
        if r.passed:
            points.append((x, y))
    front, best_y = [], -float("inf")
    for x, y in sorted(points):
        if y > best_y:
            front.append((x, y))
            best_y = y
    if len(front) > 1:
        axis.plot(*zip(*front), "--", color="#2a7ab0", linewidth=1, label="Pareto front (passing)")
    if first_gate is not None:
        threshold = None
        for check in first_gate.checks:
            if check.name.startswith("min cosine"):
                threshold = check.threshold
            elif check.name == "accuracy loss":
                threshold = first_gate.reference - check.threshold
        if threshold is not None:
            axis.axhline(threshold, color="#c0392b", linewidth=0.8, linestyle=":", label="gate threshold")
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axis.legend(unique.values(), unique.keys(), fontsize=8, loc="lower right")
    axis.set_xlabel(
        f"latency, median {'CPU ' if result.clock == 'cpu' else ''}ms ({result.threads} thread(s), shape {result.latency_shape})"
    )
    axis.set_ylabel(metric_label)
    axis.set_title(f"slimserve auto compression: {name} (marker area = model size; numbers = table rows)")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# -- pipeline entry points -------------------------------------------------------------------
# build/pipeline/run.py calls these from _build (importing them at its top is fine).


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
    from slimserve.build.pipeline.export import export_onnx

    threads = config.compression.auto.threads or lambda_threads(config.runtime.memory_mb)
    if config.prune is not None:
        from slimserve.build.compression.prune import lambda_effect, markdown, prune_for_build

        if reference.torch_model is None:  # the config check makes this unreachable from slimserve.toml
            raise CompressionError("prune: pruning needs the PyTorch model (source.module)")
        pruned, report = prune_for_build(config, reference.torch_model, log=log)
        path = export_onnx(pruned, config.export, work / "pruned.onnx")
        effect = lambda_effect(reference.fp32_path, path, threads=threads, free_dims=config.compression.auto.latency_shape)
        log(
            f"pruned model: {effect['after']['zipped_bytes'] / 1024:.1f} KB zipped "
            f"({effect['zipped_ratio']:.0%} of the original), latency x{effect['latency_ratio']:.2f}"
        )
        return path, {"prune": {**report, "lambda": effect}}, [markdown(report, effect)]
    from slimserve.build.compression.distill import distill

    student, report = distill(config, reference, log=log)
    path = export_onnx(student, config.export, work / "student.onnx")
    report["student_onnx_bytes"] = path.stat().st_size
    report["teacher_onnx_bytes"] = reference.fp32_path.stat().st_size
    lines = [
        "## Distillation",
        "",
        "| | teacher | student |",
        "|---|---|---|",
        f"| parameters | {report.get('teacher_parameters', 'n/a')} | {report['student_parameters']:,} |",
        f"| fp32 ONNX bytes | {report['teacher_onnx_bytes']:,} | {report['student_onnx_bytes']:,} |",
        "",
        (
            f"Trained {report['epochs']} epochs on {report['samples']} samples (temperature {report['temperature']:g}, "
            f"alpha {report['alpha']:g}, loss {report['loss']}) in {report['seconds']:.1f} s; the gate compares the "
            "student with the teacher."
        ),
    ]
    return path, {"distill": report}, ["\n".join(lines) + "\n"]


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
        with steps.step("search", f"auto compression, objective {compression.auto.objective}, budget {compression.auto.time_budget_s:.0f} s"):
            try:
                result = run_search(config, reference, evaluator, source_model, work, log=steps.log)
            except SearchFailed as failed:
                closest = failed.result.closest()
                shutil.copyfile(closest.path if closest is not None and closest.path else source_model, compressed)
                return StageOutcome(
                    compressed, {"method": "auto", "selected_by": "auto", "chosen": None}, failed.gate, failed,
                    [failed.result.markdown()], _plot_files(failed.result),
                )
        shutil.copyfile(result.chosen_path, compressed)
        steps.log(result.chosen_gate.explain())
        return StageOutcome(compressed, result.applied, result.chosen_gate, None, [result.markdown()], _plot_files(result))

    calibration = None
    if compression.method == "static-int8" or (compression.sensitivity != "off" and compression.method != "none"):
        calibration = load_calibration(config, list(reference.input_names))
    candidate_input = source_model
    if compression.optimize and compression.method != "none":
        with steps.step("optimize", "shape inference + onnxruntime graph optimizations"):
            candidate_input = optimize(source_model, work / "optimized.onnx")
    with steps.step("compress", compression.method):
        applied = compress(candidate_input, compressed, compression, calibration=calibration)
    with steps.step("validate", f"accuracy gate on held-out data ({config.validation.data})"):
        gate = evaluator.gate(compressed)
        steps.log(gate.explain())
    sections: list[str] = []
    wanted = compression.sensitivity == "always" or (compression.sensitivity == "on-failure" and not gate.passed)
    if wanted and compression.method != "none":
        from slimserve.build.compression.sensitivity import sensitivity_report

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


def _plot_files(result: SearchResult) -> dict[str, Path]:
    return {PLOT_FILE: result.plot_path} if result.plot_path is not None else {}
