"""Bringing a model nobody wrote for slimserve: what the build refuses before any zip exists (each
refusal one line naming the field, the declared and the actual value), and what it leaves behind
when it stops."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from slimserve.build.errors import ConfigError, ModelError, ServeCheckFailed
from slimserve.build.gate.validate import GateResult
from slimserve.build.pipeline.progress import Steps
from slimserve.build.pipeline.run import run_build
from slimserve.build.pipeline.servecheck import check_served
from slimserve.handler.manifest import load_manifest

from repo import EXAMPLES_DIR
from toymodels import linear_classifier

DATA_PY = '''import numpy as np

def heldout():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    logits = x @ np.array([[2.0, -1.0, 0.5], [-1.0, 3.0, 0.0]])
    return {"x": x}, logits.argmax(axis=1)
'''
TOML = """name = "toy"
task = "{task}"
{top}
[source]
onnx = "model.onnx"
{tables}
[validation]
data = "data.py:heldout"
"""


def project(folder: Path, outputs: tuple[str, ...] = ("logits",), *, task: str = "classification", top: str = "", tables: str = "") -> Path:
    linear_classifier(folder, outputs, model_path=folder / "model.onnx")
    (folder / "data.py").write_text(DATA_PY)
    (folder / "slimserve.toml").write_text(TOML.format(task=task, top=top, tables=tables))
    return folder


def build(folder: Path, out: Path):
    return run_build(folder, out=out, steps=Steps(), precompile_bytecode=False)


@pytest.mark.parametrize(
    "outputs,task,top,tables,message",
    [
        (
            ("logits",), "classification", "", '[export]\noutputs = [{ name = "logits", datatype = "FP32", shape = [-1, 10] }]',
            "export.outputs[0] (logits).shape: declared [-1, 10], the model's is [-1, 3]",
        ),
        (
            ("logits",), "classification", "", '[export]\ninputs = [{ name = "x", datatype = "INT64", shape = [-1, 2] }]',
            "export.inputs[0] (x).datatype: declared INT64, the model's is FP32",
        ),
        (
            ("logits",), "classification", "", "[export]\nopset = 13",
            "export.opset: declared 13, the model's is 17",
        ),
        (
            ("logits",), "classification", 'labels = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]', "",
            "labels: labels lists 10 classes, the model's output 'logits' has 3",
        ),
        (
            ("logits", "probabilities"), "classification", "", "",
            "task = 'classification': the model has 2 float [batch, classes] outputs (logits, probabilities): set "
            "task_options.output to the one holding the class scores",
        ),
        (
            ("logits",), "classification", "", '[task_options]\noutput = "probs"',
            "task_options.output: 'probs' is not an output of the model; its outputs are logits FP32 [-1, 3]",
        ),
        (
            ("label", "probabilities"), "raw", "", "",
            "the model has 2 outputs ['label', 'probabilities']: set validation.output to the one the gate scores",
        ),
    ],
)
def test_refused_before_anything_is_built(
    tmp_path: Path, outputs: tuple[str, ...], task: str, top: str, tables: str, message: str
) -> None:
    folder = project(tmp_path / "project", outputs, task=task, top=top, tables=tables)
    with pytest.raises(ModelError) as caught:
        build(folder, tmp_path / "out")
    assert str(caught.value) == message
    assert not (tmp_path / "out" / "lambda.zip").exists() and not (tmp_path / "out" / "manifest.json").exists()


def test_probabilities_that_do_not_sum_to_one_are_refused(tmp_path: Path) -> None:
    folder = project(tmp_path / "project", tables='[task_options]\nscores = "probabilities"')
    with pytest.raises(ModelError, match=r"output 'logits' is served as probabilities \(task_options.scores = 'probabilities'\), "
                       r"but on held-out row 0 its values sum to .*: set task_options.scores = 'logits'"):
        build(folder, tmp_path / "out")


def test_heldout_labels_that_are_neither_classes_nor_indices_are_named(tmp_path: Path) -> None:
    folder = project(tmp_path / "project")
    (folder / "data.py").write_text(DATA_PY.replace("return {\"x\": x}, logits.argmax(axis=1)", "return {\"x\": x}, logits.argmax(axis=1) + 7"))
    with pytest.raises(ConfigError, match=r"validation.data data.py:heldout: label '7' is neither one of the model's classes \['0', '1', '2'\] nor a class index 0..2"):
        build(folder, tmp_path / "out")


def test_a_build_that_stops_leaves_no_report_from_an_earlier_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("# slimserve build report: toy\n\n**Accuracy gate: PASSED** on 40 held-out samples.\n")
    (out / "report.png").write_bytes(b"\x89PNG")
    folder = project(tmp_path / "project", tables='[export]\noutputs = [{ name = "logits", datatype = "FP32", shape = [-1, 10] }]')
    with pytest.raises(ModelError):
        build(folder, out)
    assert not (out / "report.md").exists() and not (out / "report.png").exists()


class _Evaluator:
    """What check_served needs of an evaluator: the held-out inputs and how answers compare."""

    def __init__(self, rows: int) -> None:
        self.x = np.random.default_rng(1).normal(size=(rows, 2)).astype(np.float32)

    def request_inputs(self) -> dict[str, np.ndarray]:
        return {"x": self.x}

    def predictions(self, answers: dict[str, np.ndarray]) -> np.ndarray:
        return answers["label"][:, 0]

    def disagreements(self, served: np.ndarray, gated: np.ndarray) -> int:
        return int(np.sum(served != gated))


def _gate(predictions: np.ndarray | None) -> GateResult:
    return GateResult("accuracy", 1.0, 1.0, 0.01, 6, [], output="logits", predictions=predictions)


def _model_folder(folder: Path, **manifest: object) -> Path:
    added = ({"name": "label", "datatype": "BYTES", "shape": [-1, -1]}, {"name": "score", "datatype": "FP32", "shape": [-1, -1]})
    return linear_classifier(folder, task="classification", added_outputs=added, **manifest)


def test_serve_check_answers_through_the_handler_and_compares_with_the_gate(tmp_path: Path) -> None:
    from slimserve.build.config import load_config

    folder = project(tmp_path / "project")
    config = load_config(folder)
    served = _model_folder(tmp_path / "model", labels=["a", "b", "c"])
    manifest = load_manifest(served / "manifest.json")
    evaluator = _Evaluator(6)
    expected = np.array(["a", "b", "c"], dtype=object)[(evaluator.x @ np.array([[2.0, -1.0, 0.5], [-1.0, 3.0, 0.0]])).argmax(axis=1)]
    summary = check_served(config, served, manifest, evaluator, _gate(expected))
    assert summary == "the handler loads the model and answers all 6 held-out rows as the gate scored them (logits)"
    flipped = expected.copy()
    flipped[0] = "c" if flipped[0] != "c" else "a"
    with pytest.raises(ServeCheckFailed, match=r"^the handler answers 1 of 6 held-out requests differently from what the gate scored \(output 'logits'\); nothing was bundled$"):
        check_served(config, served, manifest, evaluator, _gate(flipped))


def test_serve_check_refuses_a_model_the_handler_refuses(tmp_path: Path) -> None:
    from slimserve.build.config import load_config

    config = load_config(project(tmp_path / "project"))
    served = _model_folder(tmp_path / "model", labels=["a", "b"])  # 2 labels, 3 classes
    with pytest.raises(ServeCheckFailed, match=r"^the handler refuses the built model: manifest has 2 labels but the model outputs 3 classes; nothing was bundled$"):
        check_served(config, served, load_manifest(served / "manifest.json"), _Evaluator(2), _gate(None))


def test_a_pytorch_export_is_checked_against_its_declaration(tmp_path: Path, digits_build: Path) -> None:
    folder = tmp_path / "digits"
    shutil.copytree(EXAMPLES_DIR / "digits", folder, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    toml = (folder / "slimserve.toml").read_text()
    (folder / "slimserve.toml").write_text(toml.replace('shape = [-1, 10]', 'shape = [-1, 3]').replace("labels = [", "# labels = ["))
    with pytest.raises(ModelError) as caught:
        build(folder, tmp_path / "out")
    assert str(caught.value) == "export.outputs[0] (logits).shape: declared [-1, 3], the model's is [-1, 10]"


def test_the_gate_scores_the_served_probabilities_not_the_first_output(tmp_path: Path) -> None:
    """A model returning (label, probabilities), as skl2onnx converts classifiers: the gate
    measured argmax(label) = the share of class 0 before; it scores the served label now."""
    from slimserve.build.config import load_config
    from slimserve.build.gate.evaluate import evaluator_for
    from slimserve.build.gate.reference import Reference
    from slimserve.build.pipeline.run import load_source

    folder = project(tmp_path / "project", ("label", "probabilities"))
    config = load_config(folder)
    fp32, torch_model, served = load_source(config, tmp_path / "work", Steps())
    assert served.scored_output == "probabilities" and served.task_options["scores"] == "probabilities"
    assert [spec.name for spec in served.outputs] == ["model_label", "probabilities", "label", "score"]
    evaluator = evaluator_for(config, Reference(fp32, torch_model, served.model.input_names, served))
    gate = evaluator.gate(fp32)
    assert gate.reference == gate.candidate == 1.0  # data.py's labels are the model's argmax
    assert gate.output == "probabilities"
