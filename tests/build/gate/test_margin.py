"""The gate's margins: bootstrap and exact binomial bounds, on fixed numbers (no model, no CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slimserve.build.gate.margin import (
    BoundSettings,
    binomial_lower_bound,
    binomial_upper_bound,
    bootstrap_quantile_lower_bound,
)
from slimserve.build.gate.validate import cosine_gate, label_gate


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_bootstrap_bound_is_fixed_and_below_the_sample_quantile() -> None:
    scores = 1.0 - np.random.default_rng(3).exponential(0.01, size=232)
    first = bootstrap_quantile_lower_bound(scores, 0.01)
    assert first == bootstrap_quantile_lower_bound(scores, 0.01)  # fixed seed: reproducible
    assert scores.min() <= first < np.quantile(scores, 0.01)
    # More confidence, a lower bound; another seed, (slightly) another bound.
    assert bootstrap_quantile_lower_bound(scores, 0.01, BoundSettings(confidence=0.99)) <= first
    assert bootstrap_quantile_lower_bound(scores, 0.05) > first


def test_a_bound_on_the_minimum_would_be_the_minimum_itself() -> None:
    """Why the gate bounds a quantile: no resample's minimum is below the sample's."""
    scores = np.random.default_rng(4).normal(size=200)
    rng = np.random.default_rng(0)
    minima = scores[rng.integers(0, 200, size=(1000, 200))].min(axis=1)
    assert np.quantile(minima, 0.05) == scores.min()
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        bootstrap_quantile_lower_bound(scores, 0.0)


def test_binomial_bounds_are_exact() -> None:
    assert binomial_lower_bound(360, 360) == pytest.approx(0.05 ** (1 / 360))
    assert binomial_upper_bound(0, 232) == pytest.approx(1 - 0.05 ** (1 / 232))  # ~3/n
    assert binomial_lower_bound(0, 10) == 0.0 and binomial_upper_bound(10, 10) == 1.0
    assert binomial_lower_bound(90, 100) < 0.9 < binomial_upper_bound(90, 100)
    with pytest.raises(ValueError):
        binomial_lower_bound(5, 4)


def test_cosine_gate_reports_the_margin_and_can_require_it() -> None:
    rng = np.random.default_rng(0)
    reference = _unit(rng.normal(size=(200, 16)))
    close = _unit(reference + rng.normal(scale=0.02, size=reference.shape))
    gate = cosine_gate(reference, close, min_cosine=0.95, mean_cosine=0.99, extra_runs={"batch 32": (reference, reference)})
    assert gate.passed
    lower = gate.extra["quantile_cosine_lower_single"]
    assert lower <= gate.extra["quantile_cosine_single"] and lower >= gate.extra["min_cosine_single"]
    assert gate.extra["quantile_cosine_lower_batch_32"] == pytest.approx(1.0)
    assert gate.extra["below_min_cosine_upper_single"] == pytest.approx(1 - 0.05 ** (1 / 200))
    assert gate.extra["bounds"]["quantile"] == 0.01 and gate.extra["bounds"]["bootstrap_resamples"] == 1000
    assert f"p1 >= {lower:.4f} (95% lower bound)" in gate.explain()
    json.dumps(gate.to_manifest())

    required = cosine_gate(reference, close, min_cosine=0.95, mean_cosine=0.99, quantile_lower_bound=lower + 1e-6)
    assert [check.name for check in required.failures] == ["cosine p1, 95% lower bound"]
    assert cosine_gate(reference, close, min_cosine=0.95, mean_cosine=0.99, quantile_lower_bound=lower).passed


def test_accuracy_gate_reports_binomial_bounds_and_can_require_them() -> None:
    """An exact copy agrees on all 100 samples: agreement 1.0, yet only >= 0.9705 for samples
    beyond them; requiring 0.99 refuses a sample that small."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(100, 10)).astype(np.float32)
    labels = logits.argmax(axis=1)
    labels[:5] = (labels[:5] + 1) % 10  # 95 % accuracy
    predictions = logits.argmax(axis=1)
    gate = label_gate(predictions, predictions.copy(), labels, tolerance=0.0, output_difference=0.0)
    assert gate.passed and gate.extra["top1_agreement"] == 1.0
    assert gate.extra["agreement_lower_bound"] == pytest.approx(0.05 ** (1 / 100))
    assert gate.extra["accuracy_lower_bound"] == pytest.approx(binomial_lower_bound(95, 100))
    strict = label_gate(
        predictions, predictions.copy(), labels, tolerance=0.0, output_difference=0.0,
        agreement_lower_bound=0.99, accuracy_lower_bound=0.9,
    )
    assert [check.name for check in strict.failures] == ["accuracy, 95% lower bound", "top-1 agreement, 95% lower bound"]
