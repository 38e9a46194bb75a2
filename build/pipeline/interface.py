"""What each task adds to the ONNX graph at build time, in one explicit table keyed by ``task``
(the build-side counterpart of ``slimserve.handler.tasks.TASKS``):

- ``api_inputs`` / ``api_outputs``: the tensors the API takes and returns (the manifest's
  ``inputs`` / ``outputs``): the model's own, plus ``label``/``score`` for classification, or
  texts in and vectors out for embeddings;
- ``model_files``: files the handler needs beside the model (the embedding task's tokenizer);
- ``calibration_inputs``: ``validation.calibration`` as the model's input arrays for static
  int8 (tokenized texts for embeddings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError
from slimserve.build.gate.reference import load_dataset
from slimserve.build.pipeline import embedding
from slimserve.handler.manifest import TensorSpec


@dataclass(frozen=True)
class TaskInterface:
    api_inputs: Callable[[BuildConfig], list[TensorSpec]]
    api_outputs: Callable[[BuildConfig], list[TensorSpec]]
    model_files: Callable[[BuildConfig], dict[str, Path]]
    calibration_inputs: Callable[[BuildConfig, list[str]], dict[str, np.ndarray]]


def model_inputs(config: BuildConfig) -> list[TensorSpec]:
    return list(config.export.inputs)


def model_outputs(config: BuildConfig) -> list[TensorSpec]:
    return list(config.export.outputs)


def classification_outputs(config: BuildConfig) -> list[TensorSpec]:
    """The model's outputs (logits) plus the top labels and their scores."""
    return [
        *model_outputs(config),
        TensorSpec(name="label", datatype="BYTES", shape=[-1, -1]),
        TensorSpec(name="score", datatype="FP32", shape=[-1, -1]),
    ]


def no_files(config: BuildConfig) -> dict[str, Path]:
    return {}


def dataset_calibration(config: BuildConfig, input_names: list[str]) -> dict[str, np.ndarray]:
    """``validation.calibration`` called as is: it returns the model's input arrays."""
    if config.validation.calibration is None:
        raise ConfigError("validation.calibration is not set: static int8 needs calibration data")
    return load_dataset(config, config.validation.calibration, "validation.calibration")[0]


# task -> what the build does for it. The one place a task's build-time interface is registered.
TASKS: dict[str, TaskInterface] = {
    "raw": TaskInterface(model_inputs, model_outputs, no_files, dataset_calibration),
    "classification": TaskInterface(model_inputs, classification_outputs, no_files, dataset_calibration),
    "embedding": TaskInterface(embedding.api_inputs, embedding.api_outputs, embedding.model_files, embedding.calibration_feeds),
}


def interface_for(config: BuildConfig) -> TaskInterface:
    try:
        return TASKS[config.task]
    except KeyError:
        raise ConfigError(f"task {config.task!r} has no build interface; choose one of {sorted(TASKS)}") from None
