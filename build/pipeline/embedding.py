"""The embedding task at build time: its API tensors, the tokenizer it ships, its texts.

``task = "embedding"`` serves a text encoder whose ONNX graph maps token ids to one vector per
text (pooling and normalisation inside the graph). The API takes texts (``text``, BYTES
``[-1]``) and returns the model's output (FP32 ``[-1, dim]``); the handler tokenizes with the
``tokenizer.json`` the build copies beside the model.

slimserve.toml, ``[task_options]`` (copied into the manifest, read by the handler):
- ``tokenizer``: the file name in the model folder (default ``tokenizer.json``);
- ``tokenizer_source``: where the build copies it from, relative to the example folder or
  ``package:<import name>/<path>`` (default: ``tokenizer`` in the example folder);
- ``max_tokens``: the model's sequence length; texts are truncated at
  ``min(max_tokens, runtime.limits.max_tokens)``.

Held-out and calibration data are ``file.py:function`` returning ``({"text": texts}, None)``;
``load_texts`` checks them and ``calibration_feeds`` tokenizes them for static int8. The
tokenizer is the handler's own code, configured exactly as the handler configures it. The gate
on these texts is ``slimserve.build.gate.cosine``; ``interface.TASKS`` wires the rest into the
pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError
from slimserve.build.gate.reference import load_dataset
from slimserve.build.pipeline.onnxfile import ModelInterface, ServedInterface
from slimserve.build.pipeline.source import resolve_path
from slimserve.handler.errors import ModelLoadError
from slimserve.handler.manifest import TensorSpec
from slimserve.handler.tasks.embedding import (
    DEFAULT_TOKENIZER_FILE,
    TokenFeeds,
    load_tokenizer,
    max_tokens_for,
)

TEXT_INPUT = "text"


def serve(config: BuildConfig, model: ModelInterface) -> ServedInterface:
    """Texts in (``text``, BYTES ``[-1]``), the model's one vector per text out."""
    outputs = model.outputs
    if len(outputs) != 1 or outputs[0].datatype != "FP32" or len(outputs[0].shape) != 2:
        raise ConfigError(
            "task = 'embedding' needs exactly one model output, FP32 of shape [-1, dim] (one vector per "
            f"text); the model's are {[(spec.name, spec.datatype, spec.shape) for spec in outputs]}"
        )
    output = TensorSpec(name=outputs[0].name, datatype="FP32", shape=[-1, outputs[0].shape[1]])
    return ServedInterface(
        model=model,
        inputs=[TensorSpec(name=TEXT_INPUT, datatype="BYTES", shape=[-1])],
        outputs=[output],
        scored_output=output.name,
        task_options=dict(config.task_options),
    )


def tokenizer_name(config: BuildConfig) -> str:
    name = config.task_options.get("tokenizer", DEFAULT_TOKENIZER_FILE)
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ConfigError(f"task_options.tokenizer must be a plain file name (e.g. 'tokenizer.json'), got {name!r}")
    return name


def tokenizer_path(config: BuildConfig) -> Path:
    """The tokenizer file the build ships (``task_options.tokenizer_source``)."""
    source = config.task_options.get("tokenizer_source", tokenizer_name(config))
    if not isinstance(source, str) or not source:
        raise ConfigError(f"task_options.tokenizer_source must be a path or 'package:...' reference, got {source!r}")
    path = resolve_path(config, source, "task_options.tokenizer_source")
    if not path.is_file():
        raise ConfigError(f"task_options.tokenizer_source: tokenizer file not found: {path}")
    return path


def model_files(config: BuildConfig) -> dict[str, Path]:
    """The tokenizer, shipped beside the model under the name the handler looks for."""
    return {tokenizer_name(config): tokenizer_path(config)}


def build_tokenizer(config: BuildConfig) -> Tokenizer:
    """The tokenizer exactly as the handler configures it from the manifest."""
    try:
        return load_tokenizer(
            tokenizer_path(config), max_tokens_for(config.task_options, config.runtime.limits), config.task_options.get("pad_token")
        )
    except ModelLoadError as exc:
        raise ConfigError(str(exc)) from None


def load_texts(config: BuildConfig, reference: str, what: str) -> list[str]:
    """``file.py:function`` returning ``({"text": texts}, labels or None)`` -> the texts."""
    inputs, _ = load_dataset(config, reference, what)
    if set(inputs) != {TEXT_INPUT}:
        raise ConfigError(f"{what} {reference} must return {{'{TEXT_INPUT}': texts}}, got inputs {sorted(inputs)}")
    texts = inputs[TEXT_INPUT]
    if texts.ndim != 1 or not all(isinstance(text, str) for text in texts.tolist()):
        raise ConfigError(f"{what} {reference}: '{TEXT_INPUT}' must be a 1-D sequence of strings")
    if len(texts) < 2:
        raise ConfigError(f"{what} {reference}: needs at least 2 texts, got {len(texts)}")
    return [str(text) for text in texts.tolist()]


def calibration_feeds(config: BuildConfig, input_names: list[str]) -> dict[str, np.ndarray]:
    """Tokenized ``validation.calibration`` texts for static int8 (the model's own inputs).

    Each text is padded to the longest calibration text so the arrays stack; a reader that feeds
    one row at a time should drop the padding (attention_mask == 0) columns of that row."""
    if config.validation.calibration is None:
        raise ConfigError("validation.calibration is not set: static int8 needs calibration texts")
    texts = load_texts(config, config.validation.calibration, "validation.calibration")
    feeds = TokenFeeds(build_tokenizer(config), {name: np.dtype(np.int64) for name in input_names})
    return feeds(texts)
