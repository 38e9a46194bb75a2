"""``validation.metric = "accuracy"``: the gate for class labels, on the output the API serves.

``task = "classification"``: the served top-1 ``label`` against the held-out labels (class labels
such as scikit-learn's ``predict`` returns, or class indices); the class probabilities (``score``)
are compared too. ``task = "raw"``: the output ``validation.output`` names (or the only one):
its arg-max for a [batch, classes] float tensor, else its values (a label tensor).

Candidates, and the original when it is an ONNX file, answer through the handler itself
(``served.ServedRunner``); a PyTorch original answers through PyTorch and the handler's own
classification functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError
from slimserve.build.gate.reference import Reference, load_dataset
from slimserve.build.gate.served import ServedRunner, api_inputs, manifest_for
from slimserve.build.gate.validate import GateResult, label_gate, torch_outputs
from slimserve.build.pipeline.classification import check_probabilities, expected_labels, takes_text
from slimserve.build.pipeline.embedding import build_tokenizer
from slimserve.build.pipeline.interface import interface_for, served_interface
from slimserve.handler.tasks.classification import (
    LABEL_OUTPUT,
    predicted_classes,
    probabilities,
    top_labels,
)
from slimserve.handler.tasks.embedding import TokenFeeds

SERVED_DIR = "served"  # beside the reference model: the model folders the handler loads


class AccuracyEvaluator:
    """Accuracy of the original and of any candidate on labelled held-out data, their top-1
    agreement, the largest difference of the scored output; and how faithfully the fp32 export
    matches PyTorch."""

    metric: ClassVar[str] = "accuracy"

    def __init__(self, config: BuildConfig, reference: Reference) -> None:
        self.config = config
        if config.task not in ("classification", "raw"):
            raise ConfigError(f"validation.metric: 'accuracy' scores class labels; task = {config.task!r} needs 'cosine'")
        self.served = reference.served or served_interface(config, reference.fp32_path)
        self.output = self.served.scored_output
        self.classification = config.task == "classification"
        self.kind = self.served.task_options.get("scores", "logits")
        raw_inputs, labels = load_dataset(config, config.validation.data, "validation.data")
        expected_names = {spec.name for spec in self.served.inputs}
        if set(raw_inputs) != expected_names:
            raise ConfigError(
                f"validation.data {config.validation.data} returned inputs {sorted(raw_inputs)}, "
                f"the model takes {sorted(expected_names)}"
            )
        self.inputs = api_inputs(self.served, raw_inputs)
        rows = len(next(iter(self.inputs.values())))
        # No labels (None): the gate is top-1 agreement with the original (its predictions are the
        # expected labels), e.g. a text classifier scored on texts nobody labelled.
        self.unlabelled = labels.ndim == 0 and labels.item() is None
        if not self.unlabelled and len(np.asarray(labels).reshape(-1)) != rows:
            raise ConfigError(f"validation.data {config.validation.data} returned {rows} input rows but {np.asarray(labels).size} labels")
        self.tokens = None
        if takes_text(config):
            self.tokens = TokenFeeds(build_tokenizer(config), {name: np.dtype(np.int64) for name in reference.input_names})
        self.runner = ServedRunner(
            manifest_for(config, self.served), reference.fp32_path.parent / SERVED_DIR, interface_for(config).model_files(config)
        )
        batch = config.validation.batch_size
        self.export_max_abs_diff: float | None = None
        if reference.torch_model is not None:
            original = self._torch_answers(reference, batch)
            exported = self.runner.answers(reference.fp32_path, self.inputs, batch)
            self.export_max_abs_diff = float(
                np.max(np.abs(exported[self.output].astype(np.float64) - original[self.output]))
            )
            self.reference_predictions, self.reference_scores = self._from_outputs(original)
        else:
            answers = self.runner.answers(reference.fp32_path, self.inputs, batch)
            self.reference_predictions, self.reference_scores = self._from_answers(answers)
        if self.unlabelled:
            self.expected = self.reference_predictions
        elif self.classification:
            self.expected = expected_labels(labels, list(self.served.labels or []), f"validation.data {config.validation.data}")
        else:
            self.expected = np.asarray(labels).reshape(-1)
        if self.classification and self.kind == "probabilities":
            check_probabilities(self.reference_scores, self.output, declared="scores" in config.task_options)

    def _torch_answers(self, reference: Reference, batch: int) -> dict[str, np.ndarray]:
        run = torch_outputs(reference.torch_model, reference.input_names)
        names = self.served.model.output_names
        parts: list[list[np.ndarray]] = []
        count = len(next(iter(self.inputs.values())))
        for start in range(0, count, batch):
            rows = {name: array[start : start + batch] for name, array in self.inputs.items()}
            if self.tokens is not None:  # a text classifier: the handler's own tokenization
                rows = self.tokens([str(text) for text in next(iter(rows.values())).tolist()])
            parts.append(run(rows))
        return {name: np.concatenate([part[index] for part in parts], axis=0) for index, name in enumerate(names)}

    def _from_outputs(self, outputs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and scores from the model's own outputs (the PyTorch original), computed
        with the handler's functions."""
        scores = np.asarray(outputs[self.output])
        if not self.classification:
            return raw_predictions(scores), scores.astype(np.float64)
        probs = probabilities(scores, self.kind)
        labels = np.array(self.served.labels, dtype=object)
        options = self.served.task_options
        predicted = (
            predicted_classes(outputs[options["label_output"]], options["label_values"]) if "label_output" in options else None
        )
        return top_labels(probs, labels, 1, predicted)[LABEL_OUTPUT][:, 0], probs.astype(np.float64)

    def _from_answers(self, answers: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and scores from what the handler served."""
        scores = answers[self.output]
        if not self.classification:
            return raw_predictions(scores), _numeric(scores)
        return answers[LABEL_OUTPUT][:, 0], probabilities(scores, self.kind).astype(np.float64)

    def gate(self, candidate: Path) -> GateResult:
        validation = self.config.validation
        answers = self.runner.answers(candidate, self.inputs, validation.batch_size)
        predictions, scores = self._from_answers(answers)
        difference = float(np.max(np.abs(scores - self.reference_scores))) if scores.size else 0.0
        result = label_gate(
            _comparable(self.reference_predictions, self.expected),
            _comparable(predictions, self.expected),
            _comparable(self.expected, self.expected),
            validation.tolerance,
            validation.min_agreement,
            output_difference=difference,
            max_output_difference=validation.max_score_diff,
            output=self.output,
            accuracy_lower_bound=validation.accuracy_lower_bound,
            agreement_lower_bound=validation.agreement_lower_bound,
        )
        result.predictions = predictions
        if self.export_max_abs_diff is not None:
            result.extra["export_max_abs_diff"] = self.export_max_abs_diff
        return result

    def request_inputs(self) -> dict[str, np.ndarray]:
        """The held-out inputs as the API takes them (the build's serve check)."""
        return self.inputs

    def predictions(self, answers: dict[str, np.ndarray]) -> np.ndarray:
        """What the gate compares, from answers the API returned (the build's serve check)."""
        return self._from_answers(answers)[0]

    def disagreements(self, served: np.ndarray, gated: np.ndarray) -> int:
        return int(np.sum(_comparable(served, gated) != _comparable(gated, gated)))


def raw_predictions(scores: np.ndarray) -> np.ndarray:
    """A raw output's prediction per row: the arg-max of a [batch, classes] float tensor, else
    the values of a [batch] (or [batch, 1]) label tensor."""
    if scores.dtype.kind == "f" and scores.ndim >= 2 and scores.shape[-1] > 1:
        return scores.argmax(axis=-1)
    return scores.reshape(len(scores), -1)[:, 0]


def _numeric(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float64) if values.dtype.kind in "biuf" else np.zeros((len(values), 0))


def _comparable(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Numbers stay numbers; anything else (labels, strings) compares as text."""
    values = np.asarray(values).reshape(-1)
    if values.dtype.kind in "biuf" and np.asarray(like).dtype.kind in "biuf":
        return values
    return np.array([value.decode() if isinstance(value, bytes) else str(value) for value in values.tolist()], dtype=object)
