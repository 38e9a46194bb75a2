"""A fake results.json for the tests of what reads it (targets, page, plots read nothing else)."""

from __future__ import annotations

from typing import Any

import pytest


def _engines(torch_ms: float, ort_ms: float, slim_ms: float) -> dict:
    def entry(value: float) -> dict:
        return {"median_ms": value, "p90_ms": value * 1.1, "runs": 60, "round_median_spread_x": 1.1}

    return {"pytorch_eager_fp32": entry(torch_ms), "onnxruntime_fp32": entry(ort_ms), "slimserve": entry(slim_ms)}


@pytest.fixture()
def fake_results() -> dict[str, Any]:
    """A results.json as the suite writes it for one text example, every section filled, on an
    AVX2-only host: each timed section carries the host it ran on."""
    cells = [
        {
            "threads": 1, "shape": "1x16", "batch": 1, "tokens": 16, "input": "batch 1 × 16 tokens",
            "engines": _engines(12.0, 4.0, 2.0), "speedup_vs_onnxruntime_fp32_x": 2.0, "speedup_vs_pytorch_eager_x": 6.0,
        }
    ]
    size = {
        "fp32_onnx_bytes": 100 * 2**20, "shipped_model_bytes": 25 * 2**20, "shipped_vs_fp32_pct": 25.0,
        "zip_zipped_bytes": 60 * 2**20, "zip_unzipped_bytes": 150 * 2**20, "zip_files": 900,
        "zipped_of_limit_pct": 120.0, "unzipped_of_limit_pct": 60.0, "architecture": "x86_64",
        "limit_zipped_direct_upload_bytes": 50 * 2**20, "limit_unzipped_bytes": 250 * 2**20,
        "zip_largest_entries_bytes": {"onnxruntime": 50 * 2**20, "model": 25 * 2**20},
        "compression": {"method": "dynamic-int8", "nodes_to_exclude": ["a", "b"]}, "gate_passed": True,
    }
    cold = {
        "contenders": {
            "floor": {"median_total_ms": 300.0, "median_import_init_ms": 280.0, "runs": 7},
            "slimserve": {"median_total_ms": 400.0, "median_import_init_ms": 370.0, "median_first_request_ms": 5.0, "runs": 7},
            "pytorch_fastapi": {"median_total_ms": 5000.0, "runs": 7},
            "onnx_fastapi": {"median_total_ms": 900.0, "runs": 7},
        },
        "slimserve_vs_floor_x": 400 / 300, "slimserve_vs_pytorch_pct": 8.0, "slimserve_vs_onnx_fastapi_x": 400 / 900,
        "onnx_fastapi_vs_floor_x": 3.0, "onnx_fastapi_vs_pytorch_pct": 18.0,
        "import_profile": {"slimserve_beyond_floor_self_ms": {"pydantic": 120.0}, "slimserve_beyond_floor_total_ms": 120.0},
        "method": "m", "notes": [],
    }
    warm = {
        "request": "1 text", "method": "m", "threads": 1, "overhead_handler_main_ms": 1.4, "overhead_mangum_app_ms": 0.6,
        "breakdown_ms": {"powertools_log_and_metrics_ms": 0.8, "mangum_and_asgi_ms": 0.2, "service_codec_and_task_ms": 0.4,
                         "of_which_tokenize_ms": 0.1},
        "paths": {name: {"median_ms": 1.0, "p90_ms": 1.2} for name in ("bare_session_run", "mangum_app", "handler_main")},
    }
    load = {
        "errors": 0, "method": "m",
        "levels": [
            {
                "concurrency": 1, "environments": 1, "requests": 100, "warmup_requests": 20, "stopped_by": "count",
                "errors": 0, "throughput_rps": 100.0, "p50_ms": 5.0, "p90_ms": 6.0, "p99_ms": 9.0,
                "rss_before": {"max_environment_bytes": 80 * 2**20}, "rss_after": {"max_environment_bytes": 80 * 2**20},
                "rss_growth_per_1000_requests_bytes": 0.0,
            }
        ],
    }
    explain = {
        "request": "the benchmark sentence (1 x 16 tokens) against a paraphrase", "method": "shapley-sampling",
        "exact": False, "samples": 256, "players": 14, "model_evaluations": 262, "residual": 1e-16, "threads": 1,
        "latency": {"median_ms": 61.5, "p90_ms": 70.25, "runs": 30},
    }
    host = {"cpu": "Test CPU", "architecture": "x86_64", "int8_flags": ["avx2"]}
    for section in (cold, warm, load, explain):
        section["machine"] = host
    return {
        "command": "slimserve bench examples/minilm",
        "quick": False,
        "machine": {
            "cpu": {"model": "Test CPU", "int8_flags": ["avx2"], "logical_cores": 2, "usable_cores": 2, "machine": "x86_64"},
            "packages": {},
            "git": {},
        },
        "examples": {
            "minilm": {"task": "embedding", "speed": {"cells": cells, "machine": host}, "size": size, "cold_start": cold, "warm": warm, "load": load, "explain": explain, "errors": {}}
        },
        "json_vs_binary": {"machine": host, "binary_speedup_x": 40.0, "paths": {"json": {"median_ms": 400.0, "p90_ms": 420.0}, "binary": {"median_ms": 10.0, "p90_ms": 11.0}}},
    }
