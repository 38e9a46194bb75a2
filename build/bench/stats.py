"""Statistics for the benchmark suite: summaries with units, interleaved timing, ratios.

Every number the suite records carries its unit in its key (``_ms``, ``_bytes``, ``_rps``,
``_x`` for a ratio, ``_pct``), so results.json reads without a legend. Timings of things that
are compared are taken *interleaved* (round-robin blocks), so background load on a shared
machine hits every contender alike and the ratios hold even when the absolute numbers drift.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

UNITS = {
    "_ms": "milliseconds",
    "_us": "microseconds",
    "_s": "seconds",
    "_bytes": "bytes",
    "_mib": "mebibytes (2^20 bytes)",
    "_rps": "requests per second",
    "_x": "ratio (dimensionless)",
    "_pct": "percent",
    "runs / requests / errors / count": "count",
}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no values."""
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summarize_ms(samples_s: Sequence[float]) -> dict[str, float | int]:
    """Median / p90 / p99 / mean / min / max in milliseconds of durations given in seconds."""
    values = np.asarray(samples_s, dtype=np.float64) * 1e3
    if values.size == 0:
        return {"runs": 0}
    return {
        "median_ms": float(np.median(values)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "runs": int(values.size),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, None when either is missing or the denominator is not > 0."""
    if numerator is None or denominator is None:
        return None
    if not (isinstance(denominator, (int, float)) and denominator > 0) or math.isnan(numerator):
        return None
    return float(numerator) / float(denominator)


def interleaved(
    contenders: Mapping[str, Callable[[], Any]],
    *,
    runs: int,
    warmup: int = 5,
    rounds: int = 10,
) -> dict[str, list[float]]:
    """Time each zero-argument callable ``runs`` times, in ``rounds`` round-robin blocks
    (contender A a block, B a block, ..., then A again), after ``warmup`` untimed calls each.
    Returns durations in seconds per contender. Blocks rather than strict alternation keep
    each contender's caches warm within a block while still spreading machine noise evenly."""
    for call in contenders.values():
        for _ in range(warmup):
            call()
    rounds = max(1, min(rounds, runs))
    base, extra = divmod(runs, rounds)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    clock = time.perf_counter
    for index in range(rounds):
        block = base + (1 if index < extra else 0)
        for name, call in contenders.items():
            bucket = samples[name]
            for _ in range(block):
                started = clock()
                call()
                bucket.append(clock() - started)
    return samples


def runs_for_budget(estimate_s: float, budget_s: float, *, minimum: int, maximum: int) -> int:
    """How many runs fit ``budget_s`` when one takes about ``estimate_s``, within bounds."""
    if estimate_s <= 0:
        return maximum
    return int(max(minimum, min(maximum, int(budget_s / estimate_s))))


def fmt_ms(value: float | None) -> str:
    """Milliseconds, with precision that suits the magnitude (0.0123 ms, 1.23 ms, 123 ms)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value < 0.1:
        return f"{value:.4f}"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def fmt_x(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}×"


def fmt_mib(value_bytes: float | None) -> str:
    if value_bytes is None:
        return "n/a"
    size = float(value_bytes) / (1024 * 1024)
    return f"{size:.3f} MiB" if size < 1 else f"{size:.1f} MiB"
