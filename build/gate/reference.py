"""The original model the gate compares against, and the held-out data it is scored on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError
from slimserve.build.gate.validate import onnx_predictor, torch_predictor
from slimserve.build.pipeline.source import call_user, load_callable

if TYPE_CHECKING:
    from slimserve.build.pipeline.onnxfile import ServedInterface


@dataclass(frozen=True)
class Reference:
    """The original model: the PyTorch module when the source is PyTorch, and its fp32 ONNX
    export (the reference itself when the source is an ONNX file)."""

    fp32_path: Path
    torch_model: Any | None
    input_names: list[str]
    # What the task serves of the model (the pipeline's; evaluators read it from fp32_path when None).
    served: ServedInterface | None = None


def load_dataset(config: BuildConfig, reference: str, what: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Call ``file.py:function`` from the example; it returns (inputs by name, labels)."""
    data = call_user(load_callable(config, reference, what), f"{what} {reference}")
    if not (isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], dict)):
        raise ConfigError(f"{what} {reference} must return (inputs: dict[name, array], labels: array)")
    inputs, labels = data
    return {name: np.asarray(array) for name, array in inputs.items()}, np.asarray(labels)


def reference_predictor(reference: Reference):
    if reference.torch_model is not None:
        return torch_predictor(reference.torch_model, reference.input_names)
    return onnx_predictor(reference.fp32_path)
