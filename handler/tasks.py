"""Task adapters: what the API does on top of the raw ONNX session.

One Protocol, one registry keyed by the manifest's ``task``. An adapter says which tensors the
API takes and returns (the manifest's ``inputs``/``outputs``), checks at load time that the model
fits, and turns decoded request tensors into response tensors.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np

from handler.errors import BadRequest, ModelLoadError
from handler.model import LoadedModel


class TaskAdapter(Protocol):
    task: ClassVar[str]

    def __init__(self, model: LoadedModel) -> None: ...

    def infer(self, tensors: dict[str, np.ndarray], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        """Return every output the task can produce, keyed by name."""
        ...


TASKS: dict[str, type[TaskAdapter]] = {}


def register(adapter: type[TaskAdapter]) -> type[TaskAdapter]:
    TASKS[adapter.task] = adapter
    return adapter


def adapter_for(model: LoadedModel) -> TaskAdapter:
    if model.manifest.task == "embedding":
        # Imported only for text models: tokenizers stays out of other models' cold start.
        import handler.text  # noqa: F401  (registers the embedding adapter)
    try:
        adapter_cls = TASKS[model.manifest.task]
    except KeyError:
        raise ModelLoadError(
            f"manifest task {model.manifest.task!r} is not supported; choose one of {sorted(TASKS)}"
        ) from None
    return adapter_cls(model)


def _check_io_matches_session(model: LoadedModel, api_inputs: list[str]) -> None:
    session_inputs = [node.name for node in model.session.get_inputs()]
    if sorted(api_inputs) != sorted(session_inputs):
        raise ModelLoadError(
            f"manifest inputs {api_inputs} do not match the model's inputs {session_inputs}"
        )


@register
class RawTask:
    """Tensors in, tensors out: the model's own inputs and outputs."""

    task: ClassVar[str] = "raw"

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        _check_io_matches_session(model, [spec.name for spec in model.inputs])

    def infer(self, tensors: dict[str, np.ndarray], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        return self.model.run(tensors)


@register
class ClassificationTask:
    """Logits out, plus the top-k labels and their scores.

    Request parameters (V2 ``parameters``): ``top_k`` (int, default from the manifest's
    ``task_options.top_k`` or 1). Extra outputs: ``label`` (BYTES [batch, k]) and ``score``
    (FP32 [batch, k]: softmax probabilities when ``task_options.softmax`` is true, the default,
    otherwise the raw logits).
    """

    task: ClassVar[str] = "classification"

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        _check_io_matches_session(model, [spec.name for spec in model.inputs])
        outputs = model.session.get_outputs()
        if len(outputs) != 1:
            raise ModelLoadError(f"a classification model has one output (logits), this one has {len(outputs)}")
        self.logits_name = outputs[0].name
        classes = outputs[0].shape[-1]
        labels = model.manifest.labels
        if labels is None:
            labels = [str(index) for index in range(classes)] if isinstance(classes, int) else []
        if isinstance(classes, int) and len(labels) != classes:
            raise ModelLoadError(f"manifest has {len(labels)} labels but the model outputs {classes} classes")
        self.labels = np.array(labels, dtype=object)
        options = model.manifest.task_options
        self.default_top_k = int(options.get("top_k", 1))
        self.softmax = bool(options.get("softmax", True))

    def infer(self, tensors: dict[str, np.ndarray], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        logits = self.model.run(tensors)[self.logits_name]
        top_k = parameters.get("top_k", self.default_top_k)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= len(self.labels):
            raise BadRequest(f"parameters.top_k must be an integer from 1 to {len(self.labels)}")
        scores = _softmax(logits) if self.softmax else logits
        order = np.argsort(-scores, axis=-1, kind="stable")[..., :top_k]
        return {
            self.logits_name: logits,
            "label": self.labels[order],
            "score": np.take_along_axis(scores, order, axis=-1).astype(np.float32),
        }


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
