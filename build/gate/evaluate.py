"""Evaluators: how the gate measures a candidate model against the original, per metric.

One Protocol and one explicit table keyed by ``validation.metric``. An evaluator computes the
original model's outputs on the held-out data once (in its constructor), then
``gate(candidate)`` scores any number of candidate ONNX files against them: the build gates
one, the ``auto`` search many.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import ClassVar, Protocol

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError
from slimserve.build.gate.reference import Reference
from slimserve.build.gate.validate import GateResult


class Evaluator(Protocol):
    metric: ClassVar[str]

    def __init__(self, config: BuildConfig, reference: Reference) -> None: ...

    def gate(self, candidate: Path) -> GateResult: ...


# metric -> (module, class): the one place an evaluator is registered.
EVALUATORS: dict[str, tuple[str, str]] = {
    "accuracy": ("slimserve.build.gate.accuracy", "AccuracyEvaluator"),
    "cosine": ("slimserve.build.gate.cosine", "CosineEvaluator"),
}


def evaluator_for(config: BuildConfig, reference: Reference) -> Evaluator:
    metric = config.validation.metric
    try:
        module, name = EVALUATORS[metric]
    except KeyError:
        raise ConfigError(f"validation.metric {metric!r} has no evaluator; choose one of {sorted(EVALUATORS)}") from None
    return getattr(import_module(module), name)(config, reference)
