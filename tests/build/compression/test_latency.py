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
