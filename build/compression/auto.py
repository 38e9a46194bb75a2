"""``compression.method = "auto"``: search compression recipes, ship the best one that passes.

A bounded list of candidates (methods x options, then the most sensitive nodes kept in fp32)
is compressed, gated by the same evaluator as any build, weighed (bytes) and timed on this
machine at the configured thread count. Among the candidates that pass the gate and the
optional requirements (``max_size_ratio``, ``min_speedup``) the objective (latency or size)
picks one; the final latencies of the finalists and the fp32 reference are measured again,
interleaved, so background load hits them alike. fp32 itself (no compression) is always a
candidate, so the search never ships a model both larger and slower than the uncompressed one
(such candidates are rejected by name), and methods that cannot touch the model (no MatMul /
Gemm / Conv weights: tree ensembles, linear models) are skipped with that reason. If nothing
passes, ``SearchFailed`` carries the full table: a model that fails its gate is never returned.

    result = run_search(config, reference, evaluator, fp32_path, work, log=steps.log)
    result.chosen_path, result.chosen_gate, result.applied, result.table, result.plot_path

The candidates are ``recipes``; ``trials.Trials`` compresses, gates and times each one; the
outcome is a ``results.SearchResult``, rendered by ``tables`` and ``plots``. The pipeline calls
the search through ``stage``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.compression import per_token
from slimserve.build.compression.graph import looks_like_transformer, quantizable_nodes
from slimserve.build.compression.latency import compare, cpu_summary, measure
from slimserve.build.compression.plots import write_pareto_plot
from slimserve.build.compression.recipes import (
    Candidate,
    default_candidates,
    user_candidates,
    variant,
)
from slimserve.build.compression.results import (
    MARKDOWN_FILE,
    PLOT_FILE,
    SEARCH_DIR,
    TABLE_FILE,
    CandidateResult,
    SearchResult,
)
from slimserve.build.compression.sensitivity import (
    Log,
    OutputProbe,
    SensitivityReport,
    ablation,
    gate_score,
)
from slimserve.build.compression.tables import text_table
from slimserve.build.compression.trials import Trials
from slimserve.build.config import BuildConfig
from slimserve.build.errors import SearchFailed
from slimserve.build.gate.reference import Reference
from slimserve.build.gate.validate import GateCheck
from slimserve.build.pipeline.interface import interface_for
from slimserve.build.units import format_bytes

MAX_FAMILY_BASES = 2
FP32_CANDIDATE = "fp32 (no compression)"


def load_calibration(config: BuildConfig, input_names: list[str]) -> dict[str, np.ndarray] | None:
    """validation.calibration as the model's input arrays (tokenized for the embedding task)."""
    if config.validation.calibration is None:
        return None
    return interface_for(config).calibration_inputs(config, input_names)


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
    trials = Trials(config, evaluator, source_model, directory, log, calibration)
    base = config.compression

    baseline = CandidateResult(0, "fp32 (reference)", variant(base, method="none"), "reference", status="baseline")
    baseline.path, baseline.bytes = source_model, trials.fp32_bytes
    baseline.gate = evaluator.gate(source_model)
    baseline.latency = measure(source_model, trials.feed, threads=trials.threads, runs=auto.runs, warmup=auto.warmup)
    trials.fp32_ms = baseline.latency.value(trials.clock)
    log(f"fp32 reference: {format_bytes(trials.fp32_bytes)}, {baseline.latency}")

    if auto.candidates is not None:
        candidates = user_candidates(base)
    else:
        transformer = looks_like_transformer(source_model)
        matmuls = any(op == "MatMul" for _, op in quantizable_nodes(source_model, "dynamic-int8"))
        candidates = default_candidates(
            base, calibration=calibration is not None, transformer=transformer, matmul_weights=matmuls,
            encoder=transformer and per_token.unsupported(source_model) is None,
        )
        if calibration is None:
            log("static int8 candidates left out: no validation.calibration data")
    # fp32 first: whatever the time budget, the uncompressed model is always weighed.
    candidates.insert(0, Candidate(FP32_CANDIDATE, variant(base, method="none")))
    for candidate in candidates:
        trials.evaluate(candidate, total=len(candidates))

    sensitivity: list[SensitivityReport] = []
    if auto.sensitivity and auto.max_excluded > 0 and not trials.out_of_time():
        sensitivity = _exclusion_family(trials)

    stopped = trials.stopped_by_budget
    finalists = [r for r in trials.results if r.passed]
    if finalists:
        _final_timing(trials, baseline, finalists)
    chosen = trials.best([r for r in trials.results if r.passed])
    if chosen is not None:
        chosen.chosen = True
    result = SearchResult(
        objective=auto.objective,
        clock=trials.clock,
        threads=trials.threads,
        latency_shape=list(auto.latency_shape),
        baseline=baseline,
        results=trials.results,
        chosen=chosen,
        seconds=time.monotonic() - trials.started,
        stopped_by_budget=stopped or trials.stopped_by_budget,
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
    for r in trials.results:
        if r.path is not None and r is not keep:
            r.path.unlink(missing_ok=True)
            r.path = None
    result.plot_path = write_pareto_plot(directory / PLOT_FILE, result, name=config.name)
    result.markdown_path = directory / MARKDOWN_FILE
    result.markdown_path.write_text(result.markdown(), encoding="utf-8")
    (directory / TABLE_FILE).write_text(json.dumps(result.table, indent=2, default=str), encoding="utf-8")
    if chosen is None:
        closest = result.closest()
        misses = (
            [check.explain() for check in closest.gate.failures] or closest.reasons
            if closest is not None and closest.gate is not None
            else []
        )
        hint = f"Closest: {closest.name}: " + "; ".join(misses) + ".\n" if closest is not None and misses else ""
        verdict = closest.gate if closest is not None and closest.gate is not None else baseline.gate
        if verdict is not None and verdict.passed:  # it passed the gate, not compression.auto's requirements
            verdict = replace(verdict, checks=[*verdict.checks, GateCheck("candidates meeting compression.auto's requirements", 0.0, 1.0, ">=")])
        raise SearchFailed(
            result,
            f"auto compression found no candidate that passes the accuracy gate"
            f"{' and the requirements' if result.requirements else ''}: "
            f"{len([r for r in result.results if r.status != 'skipped'])} tried in {result.seconds:.0f} s"
            f"{' (time budget reached)' if result.stopped_by_budget else ''}. Nothing was bundled.\n"
            f"{text_table(result.table)}\n{hint}"
            "Loosen the validation thresholds only if that loss is acceptable; otherwise raise "
            "compression.auto.time_budget_s or max_excluded, add candidates, or choose a method.",
            verdict,
        )
    log(f"chosen: {chosen.name} ({result.applied['auto']['size_ratio']:.1%} of fp32, "
        f"{result.applied['auto']['latency_ms']:.3f} ms, {result.applied['auto']['speedup']:.2f}x)")
    return result


def _exclusion_family(trials: Trials) -> list[SensitivityReport]:
    """Keep the most sensitive nodes of the most promising failing int8 recipes in fp32, one
    more at a time, until one passes (or stops being able to beat the best passing candidate).
    Up to MAX_FAMILY_BASES recipes (of different methods), closest to passing first."""
    passing = [r for r in trials.results if r.passed]
    best_passing = trials.best(passing)
    best_key = trials.objective_key(best_passing)[0] if best_passing else float("inf")
    bases = sorted(
        (
            r for r in trials.results
            if r.status == "failed gate" and r.config.method in ("dynamic-int8", "static-int8", "matmul-nbits", "per-token-int8")
            and not any(reason.startswith(("size", "speed-up")) for reason in r.reasons)
            and trials.objective_key(r)[0] < best_key
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
        if trials.out_of_time() or trials.objective_key(base)[0] >= best_key:
            continue
        trials.log(f"sensitivity: leave-one-out on {base.name} to find the nodes that lose accuracy")
        if trials.probe is None and trials.calibration is not None:
            trials.probe = OutputProbe(trials.prepared(base.config), trials.calibration)
        if trials.probe is None:
            trials.log("sensitivity: no validation.calibration data, so the held-out gate ranks the nodes")
        report = ablation(
            trials.prepared(base.config), base.config, trials.evaluator,
            probe=trials.probe,
            calibration=trials.reader(base.config),
            calibration_cache=trials.calibration_cache(base.config),
            deadline=trials.deadline,
            log=trials.log,
            baseline=(base.applied or {}, base.path) if base.path is not None else None,
        )
        report.label = base.name
        reports.append(report)
        helpful = report.helpful()
        if not helpful:
            trials.log(f"sensitivity: keeping no single node of {base.name} in fp32 improves it")
        excluded: list[str] = list(base.config.nodes_to_exclude)
        size_budget = None if trials.auto.max_size_ratio is None else trials.auto.max_size_ratio * trials.fp32_bytes
        current_bytes, count = float(base.bytes or 0), 0
        for row in helpful:
            if count >= trials.auto.max_excluded:
                break
            # keeping a node fp32 costs ~3/4 of its fp32 weight bytes over int8: skip what cannot fit
            if size_budget is not None and current_bytes + 0.75 * row.fp32_bytes > size_budget:
                trials.log(f"sensitivity: {row.node} would not fit max_size_ratio; trying the next node")
                continue
            count += 1
            excluded += [name for name in row.excluded if name not in excluded]
            config = base.config.model_copy(update={"nodes_to_exclude": list(excluded)})
            name = f"{base.name} + top {count} sensitive fp32"
            result = trials.evaluate(Candidate(name, config, "sensitivity"))
            current_bytes = float(result.bytes or current_bytes)
            if result.status in ("skipped", "failed requirement", "error"):
                break
            if result.passed:
                best_key = min(best_key, trials.objective_key(result)[0])
                break
            if trials.objective_key(result)[0] >= best_key:
                break
    return reports


def _final_timing(trials: Trials, baseline: CandidateResult, finalists: list[CandidateResult]) -> None:
    """Re-time the finalists and fp32 interleaved; their latencies and speed-ups become these."""
    models = {"fp32": baseline.path, **{str(r.index): r.path for r in finalists}}
    trials.log(f"final timing: {len(finalists)} passing candidate(s) and fp32, interleaved")
    timings = compare(
        models, trials.feed, threads=trials.threads, runs=trials.auto.runs * 2, warmup=trials.auto.warmup, rounds=5,
        served=[name for name in models if name != "fp32"],
    )
    baseline.latency = timings["fp32"]
    trials.fp32_ms = baseline.latency.value(trials.clock)
    for result in finalists:
        result.latency = timings[str(result.index)]
        trials.classify(result)
