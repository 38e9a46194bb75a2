"""``task = "classification"``: the model's outputs, plus the top-k labels and their scores.

The class scores come from one output of the model (``task_options.output``; by default its only
output): logits, to which softmax is applied, or probabilities, served as they are
(``task_options.scores``, which the build detects from the graph and writes into the manifest).
A text classifier (``task_options.tokenizer`` set, a ``source.huggingface`` folder) takes one
BYTES vector of texts and tokenizes it with the embedding task's ``TextInput``. Models with more
outputs keep them all; a model's own predicted label (scikit-learn converters'
label output, ``task_options.label_output``) is the top-1 label, whether or not it is the most
probable class (it is not always, e.g. for an SVC).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from slimserve.handler.errors import BadRequest, InferenceError, ModelLoadError
from slimserve.handler.model import LoadedModel
from slimserve.handler.tasks.base import check_io_matches_session

if TYPE_CHECKING:
    from slimserve.handler.tasks.embedding import TextInput

LABEL_OUTPUT = "label"
SCORE_OUTPUT = "score"
ScoreKind = Literal["logits", "probabilities"]


def probabilities(scores: np.ndarray, kind: str) -> np.ndarray:
    """Class probabilities from a model's scores: softmax over the last axis for logits, the
    values themselves for probabilities."""
    if kind == "probabilities":
        return scores
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def predicted_classes(values: np.ndarray, classes: list[str]) -> np.ndarray:
    """Class positions of a model's own predicted labels (e.g. scikit-learn's ``predict``, which
    for some models is not the most probable class), given the classes in score order."""
    position = {label: index for index, label in enumerate(classes)}
    flat = [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in np.asarray(values).reshape(len(values), -1)[:, 0].tolist()]
    unknown = [value for value in flat if value not in position]
    if unknown:
        raise InferenceError(f"the model predicted the label {unknown[0]!r}, which is not one of its classes")
    return np.array([position[value] for value in flat], dtype=np.int64)


def top_labels(probs: np.ndarray, labels: np.ndarray, top_k: int, predicted: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``label`` (the top_k labels, best first; ties keep the class order) and ``score`` (their
    probabilities). ``predicted``: the model's own top-1 class per row, put first."""
    order = np.argsort(-probs, axis=-1, kind="stable")
    if predicted is not None:
        rest = order[order != predicted[:, None]].reshape(len(order), -1)
        order = np.concatenate([predicted[:, None], rest], axis=1)
    order = order[..., :top_k]
    return {
        LABEL_OUTPUT: labels[order],
        SCORE_OUTPUT: np.take_along_axis(probs, order, axis=-1).astype(np.float32),
    }


class ClassificationTask:
    """Every output of the model, plus ``label`` (BYTES [batch, k]) and ``score`` (FP32
    [batch, k]): the class probabilities, exactly the model's when it outputs probabilities.

    Request parameters (V2 ``parameters``): ``top_k`` (int, default ``task_options.top_k`` or 1).
    Load-time checks (ModelLoadError): the scores output exists and is [batch, classes]; there is
    one label per class; no model output is named ``label`` or ``score``.
    """

    task: ClassVar[str] = "classification"

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        options = model.manifest.task_options
        # A text classifier (source.huggingface): the API takes texts, the handler tokenizes them
        # as the embedding task does (tokenizers is imported only for such a model).
        self.text: TextInput | None = None
        if "tokenizer" in options:
            from slimserve.handler.tasks.embedding import TextInput

            inputs = model.manifest.inputs
            if len(inputs) != 1 or inputs[0].datatype != "BYTES" or len(inputs[0].shape) != 1:
                raise ModelLoadError(
                    f"a text classifier's API takes one BYTES vector of texts; the manifest declares "
                    f"{[(spec.name, spec.datatype, spec.shape) for spec in inputs]}"
                )
            self.text = TextInput(model, inputs[0].name)
        else:
            check_io_matches_session(model, [spec.name for spec in model.inputs])
        outputs = {node.name: node for node in model.session.get_outputs()}
        taken = sorted({LABEL_OUTPUT, SCORE_OUTPUT} & set(outputs))
        if taken:
            raise ModelLoadError(f"the model's own outputs {taken} collide with the ones classification adds; rebuild")
        name = options.get("output")
        if name is None:
            if len(outputs) != 1:
                raise ModelLoadError(
                    f"the model has {len(outputs)} outputs {sorted(outputs)}; task_options.output must name the one "
                    "holding the class scores"
                )
            name = next(iter(outputs))
        if name not in outputs:
            raise ModelLoadError(f"task_options.output {name!r} is not an output of the model (it has {sorted(outputs)})")
        self.scores_name = name
        kind = options.get("scores", "logits")
        if kind not in ("logits", "probabilities"):
            raise ModelLoadError(f"task_options.scores must be 'logits' or 'probabilities', got {kind!r}")
        self.kind: ScoreKind = kind
        shape = outputs[name].shape
        classes = shape[-1] if shape and isinstance(shape[-1], int) else None
        if not shape or len(shape) != 2:
            raise ModelLoadError(f"the class scores {name!r} must be [batch, classes], the model's are {shape}")
        labels = model.manifest.labels
        if labels is None:
            if classes is None:
                raise ModelLoadError(f"the number of classes of {name!r} is not fixed; the manifest must list the labels")
            labels = [str(index) for index in range(classes)]
        if classes is not None and len(labels) != classes:
            raise ModelLoadError(f"manifest has {len(labels)} labels but the model outputs {classes} classes")
        self.labels = np.array(labels, dtype=object)
        self.default_top_k = int(options.get("top_k", 1))
        # The model's own predicted label (scikit-learn converters' label output) and the values
        # it takes, in score order: served as the top-1 label, as the model decides it.
        self.label_output = options.get("label_output")
        self.label_values = list(options.get("label_values") or labels)
        if self.label_output is not None and self.label_output not in outputs:
            raise ModelLoadError(f"task_options.label_output {self.label_output!r} is not an output of the model")
        if len(self.label_values) != len(self.labels):
            raise ModelLoadError(f"task_options.label_values has {len(self.label_values)} classes, the labels {len(self.labels)}")

    def infer(self, tensors: dict[str, np.ndarray], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        if self.text is not None:
            texts = self.text.texts(tensors[self.text.input_name])
            if not texts:
                raise BadRequest(f"input '{self.text.input_name}' holds no texts")
            tensors = self.text.feeds(texts)
        outputs = self.model.run(tensors)
        top_k = parameters.get("top_k", self.default_top_k)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= len(self.labels):
            raise BadRequest(f"parameters.top_k must be an integer from 1 to {len(self.labels)}")
        scores = outputs[self.scores_name]
        if scores.shape[-1] != len(self.labels):
            raise InferenceError(f"the model returned {scores.shape[-1]} class scores for {len(self.labels)} labels")
        predicted = None if self.label_output is None else predicted_classes(outputs[self.label_output], self.label_values)
        return {**outputs, **top_labels(probabilities(scores, self.kind), self.labels, top_k, predicted)}
