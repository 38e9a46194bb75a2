"""The suite's statistics: summaries in milliseconds, interleaved timing, ratios, formats."""

from __future__ import annotations

import math

import pytest

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
