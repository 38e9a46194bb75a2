"""The latency helper the auto search (and the benchmarks) time models with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimserve.build.compression.latency import compare, measure, session_for, synthetic_feed


def test_latency_helper(digits_models: dict[str, Path]) -> None:
    session = session_for(digits_models["fp32"], threads=1)
    feed = synthetic_feed(session, [1, 16])
    assert feed["pixels"].shape == (1, 64) and feed["pixels"].dtype == np.float32
    latency = measure(session, feed, runs=20, warmup=2)
    assert 0 < latency.median_ms <= latency.p90_ms and latency.runs == 20 and latency.threads == 1
    timings = compare({"a": digits_models["fp32"], "b": digits_models["outlier"]}, runs=20, rounds=4, free_dims=[8])
    assert set(timings) == {"a", "b"} and timings["a"].runs == 20
    assert "ms median" in str(latency)


def test_candidates_are_timed_as_served(tmp_path: Path, digits_models: dict[str, Path]) -> None:
    """as_served: the handler's session options with the options the build derives from the
    model (full-range s8 weights: level extended); otherwise onnxruntime's defaults."""
    from slimserve.build.compression.methods import compress
    from slimserve.build.config import CompressionConfig

    compress(digits_models["fp32"], tmp_path / "int8.onnx", CompressionConfig(method="dynamic-int8"))
    served = session_for(tmp_path / "int8.onnx", 1, as_served=True).get_session_options()
    assert str(served.graph_optimization_level).endswith("ORT_ENABLE_EXTENDED")
    assert served.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    default = session_for(tmp_path / "int8.onnx", 1).get_session_options()
    assert str(default.graph_optimization_level).endswith("ORT_ENABLE_ALL")
