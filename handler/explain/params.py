"""The explain request's ``parameters``: method, samples and seed (``target`` and ``output``
depend on the model, see explainer.py). Every bad value is a 400 that says what is accepted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slimserve.handler.errors import BadRequest, clip
from slimserve.handler.manifest import Explain

MAX_SEED = 2**32 - 1
MIN_SAMPLES = 2


@dataclass(frozen=True)
class ExplainParameters:
    method: str
    samples: int
    seed: int
    target: Any  # None: the model's default (the predicted class, element 0)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_parameters(parameters: dict[str, Any], spec: Explain) -> ExplainParameters:
    method = parameters.get("method", spec.methods[0])
    if method not in spec.methods:
        raise BadRequest(f"parameters.method must be one of {spec.methods}, got {clip(repr(method))}")
    samples = parameters.get("samples", min(spec.samples, spec.max_samples))
    if not _integer(samples) or not MIN_SAMPLES <= samples <= spec.max_samples:
        raise BadRequest(
            f"parameters.samples must be an integer from {MIN_SAMPLES} to {spec.max_samples} (this model's "
            f"maximum), got {clip(repr(samples))}"
        )
    seed = parameters.get("seed", 0)
    if not _integer(seed) or not 0 <= seed <= MAX_SEED:
        raise BadRequest(f"parameters.seed must be an integer from 0 to {MAX_SEED}, got {clip(repr(seed))}")
    return ExplainParameters(method=method, samples=samples, seed=seed, target=parameters.get("target"))
