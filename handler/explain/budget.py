"""Bounded cost: an explanation's model evaluations are estimated and checked against the time
the invocation has left before anything runs, so a request over the budget gets a 400 naming
the limit instead of a Lambda timeout.

The time per evaluation is measured on this function's own hardware: the first explanation of
a given input size times ``session.run`` on one row and on batches doubling up to a few
milliseconds, which gives a cost per call and a cost per element (row x features, or row x
tokens); the cost model is cached with the explainer for the warm life of the execution
environment.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slimserve.handler.errors import BadRequest
from slimserve.handler.explain.games import rows_per_run

# Kept for encoding the response and handing it back to the Lambda runtime.
RESERVE_S = 1.0
# The calibration doubles its batch until one session.run takes this long.
CALIBRATION_S = 0.005
# Estimates are stretched by this much: building coalitions, assembling the perturbed inputs
# and solving for the attributions cost time besides the model.
SAFETY_FACTOR = 1.5


def remaining_seconds(context: Any, timeout_s: float) -> float:
    """What the invocation has left: Lambda's context (``scope["aws.context"]`` under Mangum)
    knows; without one (local ASGI servers, tests) the function's whole timeout."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        try:
            return float(remaining()) / 1000.0
        except (TypeError, ValueError):
            pass
    return float(timeout_s)


@dataclass(frozen=True)
class CostModel:
    seconds_per_run: float
    seconds_per_element: float

    def estimate(self, rows: int, row_elements: int) -> float:
        runs = math.ceil(rows / rows_per_run(row_elements))
        return SAFETY_FACTOR * (runs * self.seconds_per_run + rows * row_elements * self.seconds_per_element)


def calibrate(run_rows: Callable[[int], object], row_elements: int) -> CostModel:
    """Time ``run_rows(n)`` for n = 1, 2, 4, ... until one call takes CALIBRATION_S (or a full
    chunk): the single row gives the cost per call, the largest the cost per element. The
    per-element cost of a small batch still carries call overhead, so the estimate errs long.
    Each size runs twice and the faster counts (a new shape pays for onnxruntime's allocations)."""

    def best(rows: int) -> float:
        times = []
        for _ in range(2):
            started = time.perf_counter()
            run_rows(rows)
            times.append(time.perf_counter() - started)
        return min(times)

    single = best(1)
    rows, elapsed = 1, single
    while elapsed < CALIBRATION_S and rows * 2 <= rows_per_run(row_elements):
        rows *= 2
        elapsed = best(rows)
    return CostModel(seconds_per_run=single, seconds_per_element=elapsed / (rows * row_elements))


def check_budget(*, evaluations: int, estimate_s: float, remaining_s: float, timeout_s: float, advice: str) -> None:
    budget = remaining_s - RESERVE_S
    if estimate_s > budget:
        raise BadRequest(
            f"this explanation needs {evaluations:,} model evaluations (about {estimate_s:.2f} s here), more than "
            f"the {max(budget, 0.0):.2f} s this invocation can spend ({remaining_s:.2f} s left of the function's "
            f"{timeout_s:g} s timeout, {RESERVE_S:g} s kept for the response); {advice}"
        )
