"""The issue's targets, judged from results.json only: one row per target with what was
measured, met or missed by how much, and what would close a miss (hints.py)."""

from __future__ import annotations

import math
from typing import Any

from slimserve.build.bench.report.hints import (
    cold_hint,
    overhead_hint,
    size_hint,
    speed_hint,
    zip_hint,
)
from slimserve.build.bench.stats import fmt_mib, fmt_ms, fmt_x

# The targets. "handwritten_*": the issue's own measurement of a minimal hand-written
# FastAPI + Mangum + onnxruntime handler, for reference; the suite measures it again in-run.
TARGETS = {
    "size_pct": 30.0,
    "speed_vs_ort_x": 2.5,
    "speed_vs_torch_x": 5.0,
    "cold_vs_pytorch_pct": 10.0,
    "cold_vs_floor_x": 1.5,
    "handwritten_vs_floor_x": 3.1,
    "handwritten_vs_pytorch_pct": 21.0,
    "overhead_ms": 0.5,
    "binary_speedup_x": 5.0,
    "zip_bytes": 50 * 1024 * 1024,
}


def _text_example(results: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    for name, example in results.get("examples", {}).items():
        if example.get("task") == "embedding":
            return name, example
    return None, {}


def _cell(example: dict[str, Any], threads: int, shape: str) -> dict[str, Any] | None:
    for cell in (example.get("speed") or {}).get("cells", []):
        if cell["threads"] == threads and cell["shape"] == shape:
            return cell
    return None


def _verdict(value: float | None, limit: float, *, at_most: bool, unit: str = "") -> tuple[bool | None, str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, "not measured"
    met = value <= limit if at_most else value >= limit
    if met:
        return True, "met"
    if at_most:
        return False, f"missed by {value - limit:.3g}{unit}: {value / limit:.2f}× the limit" if limit else "missed"
    return False, f"missed by {limit - value:.3g}{unit}: reaches {100 * value / limit:.0f} % of the target"



def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what was measured, the verdict, and what would close a miss."""
    rows: list[dict[str, Any]] = []

    def add(target: str, example: str | None, measured: str, required: str, verdict: tuple[bool | None, str], hint: str = "") -> None:
        met, text = verdict
        rows.append(
            {
                "target": target,
                "example": example,
                "measured": measured,
                "required": required,
                "met": met,
                "verdict": text,
                "how_to_close": "" if met else hint,
            }
        )

    text_name, text = _text_example(results)
    size = text.get("size") or {}
    add(
        "shipped model size vs fp32 ONNX",
        text_name,
        f"{size.get('shipped_vs_fp32_pct', float('nan')):.1f} % ({fmt_mib(size.get('shipped_model_bytes'))} of "
        f"{fmt_mib(size.get('fp32_onnx_bytes'))})" if size else "n/a",
        f"≤ {TARGETS['size_pct']:.0f} %",
        _verdict(size.get("shipped_vs_fp32_pct"), TARGETS["size_pct"], at_most=True, unit=" points"),
        size_hint(size, TARGETS["size_pct"]),
    )
    cell = _cell(text, 1, "1x16") or {}
    engines = cell.get("engines") or {}
    for versus, engine, speedup, target in (
        ("ONNX Runtime fp32", "onnxruntime_fp32", "speedup_vs_onnxruntime_fp32_x", TARGETS["speed_vs_ort_x"]),
        ("PyTorch eager", "pytorch_eager_fp32", "speedup_vs_pytorch_eager_x", TARGETS["speed_vs_torch_x"]),
    ):
        add(
            f"speed vs {versus}, batch 1 × 16 tokens, 1 thread",
            text_name,
            f"{fmt_x(cell.get(speedup))} ({fmt_ms(engines.get(engine, {}).get('median_ms'))} → "
            f"{fmt_ms(engines.get('slimserve', {}).get('median_ms'))} ms)" if cell else "n/a",
            f"≥ {target:g}×",
            _verdict(cell.get(speedup), target, at_most=False, unit="×"),
            speed_hint(results, text) if text else "",
        )
    gate = size.get("gate_passed")
    add(
        "accuracy gate passed",
        text_name,
        "passed" if gate else ("failed" if gate is False else "n/a"),
        "passed",
        (None, "not measured") if gate is None else ((True, "met") if gate else (False, "missed: the gate failed")),
        "loosen the compression (more nodes in fp32) until the gate passes",
    )
    for name, example in results.get("examples", {}).items():
        cold = example.get("cold_start") or {}
        if not cold or cold.get("skipped"):
            add("cold start vs PyTorch baseline handler", name, cold.get("skipped", "n/a"),
                f"≤ {TARGETS['cold_vs_pytorch_pct']:g} %", (None, "not measured"),)
            continue
        contenders = cold.get("contenders", {})
        slim = contenders.get("slimserve", {}).get("median_total_ms")
        add(
            "cold start vs PyTorch + FastAPI baseline",
            name,
            f"{cold.get('slimserve_vs_pytorch_pct') or float('nan'):.1f} % ({fmt_ms(slim)} vs "
            f"{fmt_ms(contenders.get('pytorch_fastapi', {}).get('median_total_ms'))} ms)",
            f"≤ {TARGETS['cold_vs_pytorch_pct']:g} %",
            _verdict(cold.get("slimserve_vs_pytorch_pct"), TARGETS["cold_vs_pytorch_pct"], at_most=True, unit=" points"),
            cold_hint(example),
        )
        add(
            "cold start vs floor (onnxruntime + numpy + session)",
            name,
            f"{fmt_x(cold.get('slimserve_vs_floor_x'))} ({fmt_ms(slim)} vs "
            f"{fmt_ms(contenders.get('floor', {}).get('median_total_ms'))} ms)",
            f"≤ {TARGETS['cold_vs_floor_x']:g}×",
            _verdict(cold.get("slimserve_vs_floor_x"), TARGETS["cold_vs_floor_x"], at_most=True, unit="×"),
            cold_hint(example),
        )
        onnx = contenders.get("onnx_fastapi", {}).get("median_total_ms")
        if onnx is not None:
            add(
                "cold start beats a hand-written onnxruntime + FastAPI + Mangum handler",
                name,
                f"{fmt_ms(slim)} vs {fmt_ms(onnx)} ms (that handler: {fmt_x(cold.get('onnx_fastapi_vs_floor_x'))} the floor, "
                f"{cold.get('onnx_fastapi_vs_pytorch_pct') or float('nan'):.0f} % of PyTorch; issue: "
                f"{TARGETS['handwritten_vs_floor_x']}×, {TARGETS['handwritten_vs_pytorch_pct']:.0f} %)",
                "slimserve faster",
                _verdict(cold.get("slimserve_vs_onnx_fastapi_x"), 1.0, at_most=True, unit="×"),
                cold_hint(example),
            )
    warm = text.get("warm") or {}
    add(
        "handler overhead over bare session.run, one sentence",
        text_name,
        f"{fmt_ms(warm.get('overhead_handler_main_ms'))} ms per request, median (without Powertools: "
        f"{fmt_ms(warm.get('overhead_mangum_app_ms'))} ms)"
        if warm else "n/a",
        f"≤ {TARGETS['overhead_ms']:g} ms",
        _verdict(warm.get("overhead_handler_main_ms"), TARGETS["overhead_ms"], at_most=True, unit=" ms"),
        overhead_hint(warm),
    )
    binary = results.get("json_vs_binary") or {}
    add(
        "binary tensors vs JSON, 1 MiB FP32 round trip",
        None,
        f"{fmt_x(binary.get('binary_speedup_x'))} ({fmt_ms((binary.get('paths') or {}).get('json', {}).get('median_ms'))} → "
        f"{fmt_ms((binary.get('paths') or {}).get('binary', {}).get('median_ms'))} ms)" if binary else "n/a",
        f"≥ {TARGETS['binary_speedup_x']:.0f}×",
        _verdict(binary.get("binary_speedup_x"), TARGETS["binary_speedup_x"], at_most=False, unit="×"),
        "",
    )
    add(
        f"lambda.zip zipped, {size.get('architecture', 'x86_64')} (direct upload limit)",
        text_name,
        f"{fmt_mib(size.get('zip_zipped_bytes'))}" if size else "n/a",
        "< 50 MiB",
        _verdict(None if not size else size.get("zip_zipped_bytes") / 2**20, TARGETS["zip_bytes"] / 2**20, at_most=True, unit=" MiB"),
        zip_hint(size) if size else "",
    )
    for name, example in results.get("examples", {}).items():
        load = example.get("load") or {}
        if load:
            errors = load.get("errors", 0)
            add(
                "load: zero errors at concurrency 1, 8, 32",
                name,
                f"{errors} errors in {sum(level['requests'] + level['warmup_requests'] for level in load.get('levels', []))} requests",
                "0",
                (errors == 0, "met" if errors == 0 else f"missed: {errors} errors"),
                "see error_samples in results.json",
            )
    return rows
