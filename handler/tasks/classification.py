"""``task = "classification"``: logits in, plus the top-k labels and their scores."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from slimserve.handler.errors import BadRequest, ModelLoadError
from slimserve.handler.model import LoadedModel
from slimserve.handler.tasks.base import check_io_matches_session


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
        check_io_matches_session(model, [spec.name for spec in model.inputs])
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
        scores = softmax(logits) if self.softmax else logits
        order = np.argsort(-scores, axis=-1, kind="stable")[..., :top_k]
        return {
            self.logits_name: logits,
            "label": self.labels[order],
            "score": np.take_along_axis(scores, order, axis=-1).astype(np.float32),
        }


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
