"""`slimserve bench`: the statistics and the report rendering (fast), the load client against a
plain local HTTP server (fast), and the quick suite end to end on the digits build (slow: the
reduced version CI runs so the suite cannot rot). Speed targets are reported, never asserted."""

from __future__ import annotations

import json
import math
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slimserve.build.bench.client import run_load
from slimserve.build.bench.common import SENTENCE, Example, http_api_event, infer_body
from slimserve.build.bench.report import evaluate_targets, render_markdown
from slimserve.build.bench.stats import (
    fmt_mib,
    fmt_ms,
    fmt_x,
    interleaved,
    percentile,
    ratio,
    runs_for_budget,
    summarize_ms,
)

from repo import REPO_ROOT

DIGITS = REPO_ROOT / "examples" / "digits"


# --- statistics --------------------------------------------------------------------------------


def test_summary_is_in_milliseconds_with_percentiles() -> None:
    samples = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    summary = summarize_ms(samples)
    assert summary["runs"] == 100
    assert summary["median_ms"] == pytest.approx(50.5)
    assert summary["p90_ms"] == pytest.approx(90.1)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["min_ms"] == pytest.approx(1.0) and summary["max_ms"] == pytest.approx(100.0)
    assert summarize_ms([]) == {"runs": 0}
    assert math.isnan(percentile([], 50))


def test_interleaved_runs_every_contender_in_round_robin_blocks() -> None:
    order: list[str] = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    samples = interleaved(calls, runs=7, warmup=2, rounds=3)
    assert [len(samples["a"]), len(samples["b"])] == [7, 7]
    assert all(value >= 0 for value in samples["a"] + samples["b"])
    timed = order[4:]  # after 2 warm-up calls each
    # blocks of 3, 2, 2 runs: a a a b b b a a b b a a b b
    assert "".join(timed) == "aaabbbaabbaabb"


def test_ratio_and_budget_helpers() -> None:
    assert ratio(10.0, 4.0) == 2.5
    assert ratio(None, 4.0) is None and ratio(1.0, 0.0) is None and ratio(1.0, None) is None
    assert runs_for_budget(0.01, 1.0, minimum=50, maximum=500) == 100
    assert runs_for_budget(1.0, 1.0, minimum=50, maximum=500) == 50
    assert runs_for_budget(0.0, 1.0, minimum=50, maximum=500) == 500
    assert fmt_ms(0.01234) == "0.0123" and fmt_ms(1.234) == "1.23" and fmt_ms(123.4) == "123" and fmt_ms(None) == "n/a"
    assert fmt_x(2.5) == "2.50×" and fmt_mib(3 * 1024 * 1024) == "3.0 MiB"


# --- events and requests -----------------------------------------------------------------------


def test_recorded_http_api_event_carries_the_request() -> None:
    event = http_api_event("POST", "/v2/models/m/infer", b'{"inputs": []}')
    assert event["version"] == "2.0" and event["rawPath"] == "/v2/models/m/infer"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["body"] == '{"inputs": []}' and event["isBase64Encoded"] is False
    assert event["headers"]["content-type"] == "application/json"
    binary = http_api_event("POST", "/x", b"\x00\x01", headers={"content-type": "application/octet-stream"}, base64_body=True)
    assert binary["isBase64Encoded"] is True and binary["body"] == "AAE="
    assert binary["headers"]["content-type"] == "application/octet-stream"


def test_infer_body_for_text_models_is_the_16_token_sentence(tmp_path: Path) -> None:
    from slimserve.handler.manifest import MANIFEST_SCHEMA, Manifest

    (tmp_path / "manifest.json").write_text(
        Manifest(
            schema=MANIFEST_SCHEMA,
            name="text",
            task="embedding",
            model={"file": "model.onnx", "sha256": "0" * 64, "bytes": 1},
            inputs=[{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            outputs=[{"name": "embedding", "datatype": "FP32", "shape": [-1, 4]}],
        ).to_json()
    )
    example = Example(folder=tmp_path / "no-such-example", dist=tmp_path)
    body = json.loads(infer_body(example, batch=2))
    assert body["inputs"] == [{"name": "text", "shape": [2], "datatype": "BYTES", "data": [SENTENCE, SENTENCE]}]


# --- report ----------------------------------------------------------------------------------


def _engines(torch_ms: float, ort_ms: float, slim_ms: float) -> dict:
    def entry(value: float) -> dict:
        return {"median_ms": value, "p90_ms": value * 1.1, "runs": 60, "round_median_spread_x": 1.1}

    return {"pytorch_eager_fp32": entry(torch_ms), "onnxruntime_fp32": entry(ort_ms), "slimserve": entry(slim_ms)}


def _fake_results() -> dict:
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
        "zip_largest_entries_bytes": {"onnxruntime": 50 * 2**20, "model": 25 * 2**20},
        "compression": {"method": "dynamic-int8", "nodes_to_exclude": ["a", "b"]}, "gate_passed": True,
    }
    cold = {
        "contenders": {
            "floor": {"median_total_ms": 300.0, "median_import_init_ms": 280.0, "runs": 7},
            "slimserve": {"median_total_ms": 500.0, "median_import_init_ms": 470.0, "median_first_request_ms": 5.0, "runs": 7},
            "pytorch_fastapi": {"median_total_ms": 4000.0, "runs": 7},
            "onnx_fastapi": {"median_total_ms": 900.0, "runs": 7},
        },
        "slimserve_vs_floor_x": 500 / 300, "slimserve_vs_pytorch_pct": 12.5, "slimserve_vs_onnx_fastapi_x": 500 / 900,
        "onnx_fastapi_vs_floor_x": 3.0, "onnx_fastapi_vs_pytorch_pct": 22.5,
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
    return {
        "command": "slimserve bench examples/minilm",
        "quick": False,
        "machine": {"cpu": {"model": "Test CPU", "int8_flags": ["avx2"], "logical_cores": 2, "usable_cores": 2}, "packages": {}, "git": {}},
        "examples": {
            "minilm": {"task": "embedding", "speed": {"cells": cells}, "size": size, "cold_start": cold, "warm": warm, "load": load, "errors": {}}
        },
        "json_vs_binary": {"binary_speedup_x": 40.0, "paths": {"json": {"median_ms": 400.0, "p90_ms": 420.0}, "binary": {"median_ms": 10.0, "p90_ms": 11.0}}},
    }


def test_targets_say_met_or_missed_by_how_much_and_what_would_close_it() -> None:
    rows = {(row["target"], row["example"]): row for row in evaluate_targets(_fake_results())}
    size = rows[("shipped model size vs fp32 ONNX", "minilm")]
    assert size["met"] is True and size["how_to_close"] == ""
    ort = rows[("speed vs ONNX Runtime fp32, batch 1 × 16 tokens, 1 thread", "minilm")]
    assert ort["met"] is False
    assert ort["verdict"] == "missed by 0.5×: reaches 80 % of the target"
    assert "VNNI" in ort["how_to_close"] and "2 MatMul node(s)" in ort["how_to_close"]
    assert rows[("speed vs PyTorch eager, batch 1 × 16 tokens, 1 thread", "minilm")]["met"] is True
    assert rows[("cold start vs PyTorch + FastAPI baseline", "minilm")]["met"] is True
    assert rows[("cold start vs floor (onnxruntime + numpy + session)", "minilm")]["met"] is True
    assert rows[("cold start beats a hand-written onnxruntime + FastAPI + Mangum handler", "minilm")]["met"] is True
    overhead = rows[("handler overhead over bare session.run, one sentence", "minilm")]
    assert overhead["met"] is False and "1.40× the limit" in overhead["verdict"] and "Powertools" in overhead["how_to_close"]
    zipped = rows[("lambda.zip zipped, x86_64 (direct upload limit)", "minilm")]
    assert zipped["met"] is False and "onnxruntime" in zipped["how_to_close"]
    assert rows[("binary tensors vs JSON, 1 MiB FP32 round trip", None)]["met"] is True
    assert rows[("load: zero errors at concurrency 1, 8, 32", "minilm")]["met"] is True


def test_targets_without_a_text_model_are_not_measured() -> None:
    results = _fake_results()
    results["examples"]["minilm"]["task"] = "classification"
    rows = evaluate_targets(results)
    text_rows = [row for row in rows if row["target"].startswith(("shipped model size", "speed vs", "handler overhead"))]
    assert text_rows and all(row["met"] is None and row["verdict"] == "not measured" for row in text_rows)


def test_markdown_renders_every_section_from_the_results(tmp_path: Path) -> None:
    results = _fake_results()
    results["targets"] = evaluate_targets(results)
    results["plots"] = ["latency.png"]
    page = render_markdown(results, plots_dir=tmp_path / "bench", page=tmp_path / "BENCHMARKS.md")
    for heading in ("## Machine", "## Targets", "### 1. Model speed", "### 2. Size", "### 3. Cold start",
                    "### 4. Warm request overhead", "### 5. Load", "## JSON vs binary", "## Plots"):
        assert heading in page
    assert "Test CPU" in page and "❌ missed" in page and "✅ met" in page
    assert "| 1 | batch 1 × 16 tokens | 12.0 / 13.2 | 4.00 / 4.40 | 2.00 / 2.20 | 2.00× | 6.00× |" in page
    assert "![latency](bench/latency.png)" in page


# --- load client ---------------------------------------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        fail = self.path.endswith("/fail")
        body = b'{"error": "no"}' if fail else b'{"outputs": []}'
        self.send_response(500 if fail else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_load_client_counts_requests_and_errors(echo_server: str) -> None:
    result = run_load(f"{echo_server}/v2/models/m/infer", b"{}", concurrency=4, count=200, time_cap_s=30)
    assert result["requests"] == 200 and result["errors"] == 0 and result["stopped_by"] == "count"
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["throughput_rps"] > 0
    failing = run_load(f"{echo_server}/fail", b"{}", concurrency=2, count=10, time_cap_s=30)
    assert failing["errors"] == 10 and failing["error_samples"][0].startswith("status 500")


def test_load_client_stops_at_the_time_cap(echo_server: str) -> None:
    started = time.perf_counter()
    result = run_load(f"{echo_server}/v2/models/m/infer", b"{}", concurrency=2, count=10**9, time_cap_s=0.5)
    assert time.perf_counter() - started < 5
    assert result["stopped_by"] == "time cap" and result["requests"] > 0


def test_load_client_only_talks_to_this_machine() -> None:
    with pytest.raises(ValueError, match="only talks to this machine"):
        run_load("http://example.com/x", b"{}", concurrency=1, count=1, time_cap_s=1)


# --- the quick suite end to end ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_suite_on_digits_end_to_end(digits_build: Path, tmp_path: Path) -> None:
    from slimserve.build.bench.suite import bench_failed, run_bench

    root_page = REPO_ROOT / "BENCHMARKS.md"
    root_before = root_page.stat().st_mtime_ns if root_page.exists() else None
    out = tmp_path / "bench"
    page = tmp_path / "BENCHMARKS.md"
    results = run_bench(
        [DIGITS], out, quick=True, builds={DIGITS: digits_build}, benchmarks_md=page, cache_dir=REPO_ROOT / ".cache"
    )
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["examples"].keys() == results["examples"].keys() == {"digits"}
    assert not bench_failed(results), json.dumps({k: v.get("errors") for k, v in results["examples"].items()})
    machine = on_disk["machine"]
    assert machine["cpu"]["model"] and machine["cpu"]["logical_cores"] >= 1 and machine["python"]
    assert machine["packages"]["onnxruntime"] and machine["date_utc"]
    digits = on_disk["examples"]["digits"]

    speed = digits["speed"]
    assert {(cell["threads"], cell["shape"]) for cell in speed["cells"]} == {(1, "1x16"), (1, "8x64"), (2, "1x16"), (2, "8x64")}
    for cell in speed["cells"]:
        assert set(cell["engines"]) == {"pytorch_eager_fp32", "onnxruntime_fp32", "slimserve"}
        for engine in cell["engines"].values():
            assert engine["runs"] >= 10 and 0 < engine["median_ms"] <= engine["p90_ms"]
        assert cell["output_agreement"]["onnxruntime_fp32_vs_pytorch"]["max_abs_diff"] < 1e-3

    size = digits["size"]
    assert size["fp32_onnx_bytes"] == (digits_build / "work" / "fp32.onnx").stat().st_size
    assert size["shipped_model_bytes"] == (digits_build / "model.onnx").stat().st_size
    assert size["zip_zipped_bytes"] == (digits_build / "lambda.zip").stat().st_size
    with zipfile.ZipFile(digits_build / "lambda.zip") as archive:
        assert size["zip_unzipped_bytes"] == sum(info.file_size for info in archive.infolist())
    assert size["zip_unzipped_bytes"] > size["zip_zipped_bytes"] > size["shipped_model_bytes"]
    assert size["fits_direct_upload"] and size["fits_unzipped"]

    cold = digits["cold_start"]
    if "skipped" not in cold:  # the zip's target Python is installed here
        contenders = cold["contenders"]
        assert cold["errors"] == 0
        assert 0 < contenders["floor"]["median_total_ms"] < contenders["slimserve"]["median_total_ms"]
        assert contenders["pytorch_fastapi"]["median_total_ms"] > 0
        assert contenders["slimserve"]["runs"] == 2
        assert cold["slimserve_vs_floor_x"] > 1

    warm = digits["warm"]
    assert warm["paths"]["handler_main"]["median_ms"] > warm["paths"]["bare_session_run"]["median_ms"] > 0

    load = digits["load"]
    assert [level["concurrency"] for level in load["levels"]] == [1, 8, 32]
    for level in load["levels"]:
        assert level["errors"] == 0 and level["warmup_errors"] == 0 and level["requests"] > 0
        assert level["throughput_rps"] > 0 and 0 < level["p50_ms"] <= level["p99_ms"]
        assert level["rss_after"]["total_bytes"] > 0 and level["environments_replaced"] == 0

    binary = on_disk["json_vs_binary"]
    assert binary["binary_request_bytes"] > 1024 * 1024 and binary["json_request_bytes"] > binary["binary_request_bytes"]
    assert binary["paths"]["json"]["median_ms"] > 0 and binary["paths"]["binary"]["median_ms"] > 0

    assert on_disk["targets"] and all(row["met"] in (True, False, None) for row in on_disk["targets"])
    assert set(on_disk["plots"]) == {"latency.png", "cold_start.png", "size.png", "load.png"} or "skipped" in cold
    for plot in on_disk["plots"]:
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "## Targets" in text and machine["cpu"]["model"] in text and "QUICK" in text
    assert (out / "BENCHMARKS.md").read_text() != ""
    # A quick run never overwrites the repository's quoted numbers.
    assert (root_page.stat().st_mtime_ns if root_page.exists() else None) == root_before
