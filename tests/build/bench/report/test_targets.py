"""The targets: met or missed by how much, and what would close a miss, from results.json."""

from __future__ import annotations

from typing import Any

from slimserve.build.bench.report.targets import evaluate_targets


def test_targets_say_met_or_missed_by_how_much_and_what_would_close_it(fake_results: dict[str, Any]) -> None:
    rows = {(row["target"], row["example"]): row for row in evaluate_targets(fake_results)}
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
    slower = {**fake_results["examples"]["minilm"]["cold_start"], "slimserve_vs_floor_x": 1.6, "slimserve_vs_pytorch_pct": 11.0}
    missed = {**fake_results, "examples": {"minilm": {**fake_results["examples"]["minilm"], "cold_start": slower}}}
    cold = {row["target"]: row for row in evaluate_targets(missed) if row["example"] == "minilm"}
    assert cold["cold start vs floor (onnxruntime + numpy + session)"]["met"] is False  # the 1.5×
    assert cold["cold start vs PyTorch + FastAPI baseline"]["met"] is False  # the 10 %
    overhead = rows[("handler overhead over bare session.run, one sentence", "minilm")]
    assert overhead["met"] is False and "2.80× the limit" in overhead["verdict"] and "Powertools" in overhead["how_to_close"]
    zipped = rows[("lambda.zip zipped, x86_64 (direct upload limit)", "minilm")]
    assert zipped["met"] is False and "onnxruntime" in zipped["how_to_close"]
    assert rows[("binary tensors vs JSON, 1 MiB FP32 round trip", None)]["met"] is True
    assert rows[("load: zero errors at concurrency 1, 8, 32", "minilm")]["met"] is True


def test_targets_without_a_text_model_are_not_measured(fake_results: dict[str, Any]) -> None:
    results = fake_results
    results["examples"]["minilm"]["task"] = "classification"
    rows = evaluate_targets(results)
    text_rows = [row for row in rows if row["target"].startswith(("shipped model size", "speed vs", "handler overhead"))]
    assert text_rows and all(row["met"] is None and row["verdict"] == "not measured" for row in text_rows)
