"""Evaluators: how the gate measures a candidate model against the original, per metric.

One Protocol and a registry keyed by ``validation.metric``. An evaluator computes the original
model's outputs on the held-out data once (in its constructor), then ``gate(candidate)`` scores
any number of candidate ONNX files against them: the build gates one, the ``auto`` search many.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from build.config import BuildConfig, ConfigError
from build.source import load_callable
from build.validate import GateResult, batched, classification_gate, onnx_predictor, torch_predictor


@dataclass(frozen=True)
class Reference:
    """The original model: the PyTorch module when the source is PyTorch, and its fp32 ONNX
    export (the reference itself when the source is an ONNX file)."""

    fp32_path: Path
    torch_model: Any | None
    input_names: list[str]


class Evaluator(Protocol):
    metric: ClassVar[str]

    def __init__(self, config: BuildConfig, reference: Reference) -> None: ...

    def gate(self, candidate: Path) -> GateResult: ...


EVALUATORS: dict[str, type[Evaluator]] = {}


def register(evaluator: type[Evaluator]) -> type[Evaluator]:
    EVALUATORS[evaluator.metric] = evaluator
    return evaluator


def evaluator_for(config: BuildConfig, reference: Reference) -> Evaluator:
    metric = config.validation.metric
    if metric == "cosine":
        import build.embedding  # noqa: F401  (registers the cosine evaluator)
    try:
        return EVALUATORS[metric](config, reference)
    except KeyError:
        raise ConfigError(f"validation.metric {metric!r} has no evaluator; choose one of {sorted(EVALUATORS)}") from None


def load_dataset(config: BuildConfig, reference: str, what: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Call ``file.py:function`` from the example; it returns (inputs by name, labels)."""
    loader = load_callable(config, reference, what)
    data = loader()
    if not (isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], dict)):
        raise ConfigError(f"{what} {reference} must return (inputs: dict[name, array], labels: array)")
    inputs, labels = data
    return {name: np.asarray(array) for name, array in inputs.items()}, np.asarray(labels)


def reference_predictor(reference: Reference):
    if reference.torch_model is not None:
        return torch_predictor(reference.torch_model, reference.input_names)
    return onnx_predictor(reference.fp32_path)


@register
class AccuracyEvaluator:
    """Classification: accuracy of both models on labelled held-out data, top-1 agreement,
    max absolute logit difference; and how faithfully the fp32 export matches PyTorch."""

    metric: ClassVar[str] = "accuracy"

    def __init__(self, config: BuildConfig, reference: Reference) -> None:
        self.config = config
        self.inputs, self.labels = load_dataset(config, config.validation.data, "validation.data")
        expected = set(reference.input_names)
        if set(self.inputs) != expected:
            raise ConfigError(
                f"validation.data {config.validation.data} returned inputs {sorted(self.inputs)}, "
                f"the model takes {sorted(expected)}"
            )
        batch = config.validation.batch_size
        self.reference_out = batched(reference_predictor(reference), self.inputs, batch)
        self.export_max_abs_diff: float | None = None
        if reference.torch_model is not None:
            fp32_out = batched(onnx_predictor(reference.fp32_path), self.inputs, batch)
            self.export_max_abs_diff = float(np.max(np.abs(fp32_out.astype(np.float64) - self.reference_out)))

    def gate(self, candidate: Path) -> GateResult:
        validation = self.config.validation
        candidate_out = batched(onnx_predictor(candidate), self.inputs, validation.batch_size)
        result = classification_gate(
            self.reference_out, candidate_out, self.labels, validation.tolerance, validation.min_agreement
        )
        if self.export_max_abs_diff is not None:
            result.extra["export_max_abs_diff"] = self.export_max_abs_diff
        return result
