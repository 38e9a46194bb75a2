"""The gate's arithmetic: the cosine gate's checks, verdicts and explanations on synthetic vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slimserve.build.gate.validate import cosine_gate


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_cosine_gate_passes_close_vectors_and_reports_every_run() -> None:
    rng = np.random.default_rng(0)
    reference = _unit(rng.normal(size=(50, 16)))
    close = _unit(reference + rng.normal(scale=0.01, size=reference.shape))
    gate = cosine_gate(reference, close, min_cosine=0.95, mean_cosine=0.99, extra_runs={"batch 32": (reference, reference)})
    assert gate.passed and gate.metric == "cosine" and gate.samples == 50
    assert [check.name for check in gate.checks] == [
        "min cosine (single)", "mean cosine (single)", "min cosine (batch 32)", "mean cosine (batch 32)",
    ]
    assert gate.extra["nn_agreement_batch_32"] == 1.0 and gate.extra["min_cosine_batch_32"] == pytest.approx(1.0)
    assert gate.explain().startswith("cosine gate passed on 50 held-out texts (single: min 0.99")
    json.dumps(gate.to_manifest())  # goes into manifest.json as is


def test_cosine_gate_failure_says_which_check_missed_and_what_to_do() -> None:
    rng = np.random.default_rng(1)
    reference = _unit(rng.normal(size=(40, 16)))
    damaged = reference.copy()
    damaged[3] = -damaged[3]  # one vector flipped: min cosine -1, mean 0.95
    gate = cosine_gate(reference, damaged, min_cosine=0.95, mean_cosine=0.99)
    assert not gate.passed
    assert [check.name for check in gate.failures] == ["min cosine", "mean cosine"]
    text = gate.explain()
    assert "cosine gate FAILED on 40 held-out texts: min cosine = -1 (must be >= 0.95): MISSED by 1.95" in text
    assert "mean cosine = 0.95 (must be >= 0.99): MISSED by 0.04" in text
    assert "validation.min_cosine / validation.mean_cosine" in text and "nodes_to_exclude" in text
    with pytest.raises(ValueError, match="reference shape"):
        cosine_gate(reference, damaged[:5], min_cosine=0.9, mean_cosine=0.9)


def test_label_gate_says_how_far_scores_moved_and_can_bound_it() -> None:
    from slimserve.build.gate.validate import label_gate

    labels = np.array(["a", "b", "a", "b"], dtype=object)
    unbounded = label_gate(labels, labels, labels, 0.01, output_difference=0.056, output="probabilities")
    assert unbounded.passed and unbounded.output == "probabilities"
    assert unbounded.explain().endswith(
        "; the shipped model's scores differ from the original's by up to 0.056 (validation.max_score_diff bounds that)"
    )
    assert "differ" not in label_gate(labels, labels, labels, 0.01, output_difference=1e-6).explain()
    bounded = label_gate(labels, labels, labels, 0.01, output_difference=0.056, max_output_difference=0.01)
    assert not bounded.passed
    assert [check.explain() for check in bounded.failures] == ["max score difference = 0.056 (must be <= 0.01): MISSED by 0.046"]
    assert bounded.to_manifest()["output"] is None
