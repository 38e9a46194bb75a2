"""The classification task on real classifier outputs: logits (softmax applied), probabilities
(served exactly), a label tensor beside the probabilities (scikit-learn converters), and the
load-time checks that keep a manifest the model does not fit from serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimserve.handler.errors import ModelLoadError
from slimserve.handler.model import load_model
from slimserve.handler.service import InferenceService
from slimserve.handler.tasks.classification import ClassificationTask

from toymodels import linear_classifier

# One row whose class-1 logit is far ahead: softmax of the probabilities would flatten it.
ROW = np.array([[0.0, 3.0]], dtype=np.float32)
LABEL_SCORE = ({"name": "label", "datatype": "BYTES", "shape": [-1, -1]}, {"name": "score", "datatype": "FP32", "shape": [-1, -1]})


def _served(folder: Path, outputs: tuple[str, ...], **manifest: object) -> ClassificationTask:
    linear_classifier(folder, outputs, task="classification", added_outputs=LABEL_SCORE, **manifest)
    return ClassificationTask(load_model(folder, intra_op_threads=1))


def _probabilities(row: np.ndarray) -> np.ndarray:
    logits = row @ np.array([[2.0, -1.0, 0.5], [-1.0, 3.0, 0.0]])
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def test_logits_get_softmax(tmp_path: Path) -> None:
    task = _served(tmp_path, ("logits",))
    out = task.infer({"x": ROW}, {})
    assert out["label"].tolist() == [["1"]]
    assert out["score"][0, 0] == pytest.approx(_probabilities(ROW[0])[1], abs=1e-6)
    assert set(out) == {"logits", "label", "score"}


def test_probabilities_are_served_exactly_not_softmaxed_again(tmp_path: Path) -> None:
    task = _served(tmp_path, ("probabilities",), task_options={"scores": "probabilities"})
    out = task.infer({"x": ROW}, {"top_k": 3})
    expected = np.sort(_probabilities(ROW[0]))[::-1]
    assert expected[0] > 0.999  # softmax of these would give ~0.57: the bug this test pins
    assert out["score"][0].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert out["score"][0, 0] == out["probabilities"][0].max()


def test_label_and_probabilities_model_keeps_every_output(tmp_path: Path) -> None:
    task = _served(
        tmp_path, ("label:model_label", "probabilities"),
        task_options={"output": "probabilities", "scores": "probabilities"}, labels=["cat", "dog", "eel"],
    )
    out = task.infer({"x": np.vstack([ROW, [[3.0, 0.0]]]).astype(np.float32)}, {})
    assert out["model_label"].tolist() == [1, 0]
    assert out["label"].tolist() == [["dog"], ["cat"]]
    assert set(out) == {"model_label", "probabilities", "label", "score"}


def test_the_models_own_prediction_is_the_top_label_even_when_not_the_most_probable(tmp_path: Path) -> None:
    task = _served(
        tmp_path, ("least", "probabilities"),
        task_options={"output": "probabilities", "scores": "probabilities", "label_output": "least", "label_values": ["0", "1", "2"]},
        labels=["cat", "dog", "eel"],
    )
    out = task.infer({"x": ROW}, {"top_k": 3})
    probs = _probabilities(ROW[0])
    assert out["least"].tolist() == [int(probs.argmin())] == [0]
    assert out["label"].tolist() == [["cat", "dog", "eel"]]  # the model's choice first, then by probability
    assert out["score"][0].tolist() == pytest.approx([probs[0], probs[1], probs[2]], abs=1e-6)


def test_predict_returns_every_output_of_the_model(tmp_path: Path) -> None:
    _served(
        tmp_path, ("label:model_label", "probabilities"),
        task_options={"output": "probabilities", "scores": "probabilities"},
    )
    service = InferenceService(load_model(tmp_path, intra_op_threads=1))
    body = service.predict(json.dumps({"instances": ROW.tolist()}).encode())
    (prediction,) = body["predictions"]
    assert prediction["label"] == "1" and prediction["score"] == pytest.approx(_probabilities(ROW[0])[1], abs=1e-6)
    assert prediction["outputs"]["model_label"] == 1
    assert prediction["outputs"]["probabilities"] == pytest.approx(_probabilities(ROW[0]).tolist(), abs=1e-6)


@pytest.mark.parametrize(
    "outputs,manifest,message",
    [
        (("logits", "probabilities"), {}, r"the model has 2 outputs \['logits', 'probabilities'\]; task_options.output must name"),
        (("logits",), {"task_options": {"output": "logit"}}, r"task_options.output 'logit' is not an output of the model"),
        (("logits",), {"task_options": {"scores": "odds"}}, r"task_options.scores must be 'logits' or 'probabilities', got 'odds'"),
        (("logits",), {"labels": ["a", "b"]}, r"manifest has 2 labels but the model outputs 3 classes"),
        (("label", "probabilities"), {"task_options": {"output": "probabilities"}}, r"the model's own outputs \['label'\] collide"),
        (("label:predicted",), {"task_options": {"output": "predicted"}}, r"the class scores 'predicted' must be \[batch, classes\]"),
    ],
)
def test_load_refuses_a_manifest_the_model_does_not_fit(tmp_path: Path, outputs: tuple[str, ...], manifest: dict, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        _served(tmp_path, outputs, **manifest)
