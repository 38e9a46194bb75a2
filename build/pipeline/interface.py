"""What each task makes of the model at build time, in one explicit table keyed by ``task`` (the
build-side counterpart of ``slimserve.handler.tasks.TASKS``):

- ``serve``: from the model's own interface (read from the ONNX file, ``onnxfile``) to what the
  manifest declares: the API's inputs and outputs (the model's, plus ``label``/``score`` for
  classification, or texts in and vectors out for embeddings), the labels, the task options the
  handler reads (with what the build detected), and the output the gate scores;
- ``model_files``: files the handler needs beside the model (the embedding task's tokenizer);
- ``calibration_inputs``: ``validation.calibration`` as the model's input arrays for static
  int8 (tokenized texts for embeddings);
- ``reserved``: output names the task adds (a model output of that name is renamed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError, ModelError
from slimserve.build.gate.reference import load_dataset
from slimserve.build.pipeline import classification, embedding
from slimserve.build.pipeline.onnxfile import ModelInterface, ServedInterface, read_interface


@dataclass(frozen=True)
class TaskInterface:
    serve: Callable[[BuildConfig, ModelInterface], ServedInterface]
    model_files: Callable[[BuildConfig], dict[str, Path]]
    calibration_inputs: Callable[[BuildConfig, list[str]], dict[str, np.ndarray]]
    reserved: frozenset[str] = frozenset()


def raw_serve(config: BuildConfig, model: ModelInterface) -> ServedInterface:
    """The model's tensors as they are; the gate scores ``validation.output`` (needed when the
    model has more than one output)."""
    names = model.output_names
    chosen = config.validation.output
    if chosen is not None and chosen not in names:
        raise ModelError(f"validation.output: {chosen!r} is not an output of the model; its outputs are {names}")
    if chosen is None:
        if len(names) != 1:
            raise ModelError(
                f"the model has {len(names)} outputs {names}: set validation.output to the one the gate scores"
            )
        chosen = names[0]
    return ServedInterface(
        model=model, inputs=list(model.inputs), outputs=list(model.outputs), scored_output=chosen,
        task_options=dict(config.task_options),
    )


def no_files(config: BuildConfig) -> dict[str, Path]:
    return {}


def dataset_calibration(config: BuildConfig, input_names: list[str]) -> dict[str, np.ndarray]:
    """``validation.calibration`` called as is: it returns the model's input arrays."""
    if config.validation.calibration is None:
        raise ConfigError("validation.calibration is not set: static int8 needs calibration data")
    return load_dataset(config, config.validation.calibration, "validation.calibration")[0]


def classification_files(config: BuildConfig) -> dict[str, Path]:
    """A text classifier ships its tokenizer, as the embedding task does."""
    return embedding.model_files(config) if classification.takes_text(config) else {}


def classification_calibration(config: BuildConfig, input_names: list[str]) -> dict[str, np.ndarray]:
    if classification.takes_text(config):
        return embedding.calibration_feeds(config, input_names)
    return dataset_calibration(config, input_names)


# task -> what the build does for it. The one place a task's build-time interface is registered.
TASKS: dict[str, TaskInterface] = {
    "raw": TaskInterface(raw_serve, no_files, dataset_calibration),
    "classification": TaskInterface(
        classification.serve, classification_files, classification_calibration, frozenset(classification.ADDED_OUTPUTS)
    ),
    "embedding": TaskInterface(embedding.serve, embedding.model_files, embedding.calibration_feeds),
}


def interface_for(config: BuildConfig) -> TaskInterface:
    try:
        return TASKS[config.task]
    except KeyError:
        raise ConfigError(f"task {config.task!r} has no build interface; choose one of {sorted(TASKS)}") from None


def served_interface(config: BuildConfig, model_path: Path) -> ServedInterface:
    """The task's view of the ONNX file at ``model_path`` (its interface read from the graph)."""
    return interface_for(config).serve(config, read_interface(model_path))
