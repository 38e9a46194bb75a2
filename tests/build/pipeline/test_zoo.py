"""The model zoo (tests/zoo.py), each model built once with the smallest config that says what it
is, then served by ``slimserve local`` (the real zip under the Lambda runtime client):

- the gate's reference accuracy is the original library's own ``score`` on the same rows, exactly,
  and report.md and the manifest name the output it scored;
- through the local API, the served labels agree with the original model on >= 99 % of the
  held-out rows and the served scores are its probabilities: within 1e-3 when the model ships
  uncompressed, else within what the gate measured and reported (max_abs_output_diff; the zoo's
  MLP and CNN bound it to 1e-2 with validation.max_score_diff);
- where the build offers explanations, ``/explain`` attributes the served scores (not a
  converter's string label) and base + sum of attributions is the explained output.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from filelock import FileLock

from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.run import running
from slimserve.handler.manifest import Manifest, load_manifest

from localkit import CACHE_DIR, quiet_console
from zoo import ZOO, Expected

pytestmark = pytest.mark.slow

# Raw models: (the output holding labels, or None for the arg-max of the scores; the scores output).
RAW_OUTPUTS = {"naive-bayes": ("label", "probabilities"), "two-heads": (None, "logits")}
BATCH = 32


@pytest.fixture(scope="module", params=[pytest.param(name, marks=pytest.mark.xdist_group(f"zoo-{name}")) for name in ZOO])
def zoo_build(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """(name, the project folder, its build), made once per session (shared by xdist workers)."""
    from slimserve.build.pipeline.progress import Steps
    from slimserve.build.pipeline.run import run_build

    name = request.param
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    project, out = shared / "zoo" / name, shared / "zoo-builds" / name
    with FileLock(str(shared / f"zoo-{name}.lock")):
        if not (out / "lambda.zip").is_file():
            shutil.rmtree(project, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            ZOO[name](project).save(project)
            run_build(project, out=out, steps=Steps(), precompile_bytecode=False)
    return name, project, out


def test_the_gate_reports_the_librarys_own_accuracy(zoo_build: tuple[str, Path, Path]) -> None:
    name, project, out = zoo_build
    expected = Expected.load(project)
    validation = load_manifest(out / "manifest.json").validation
    assert validation is not None and validation.passed
    assert validation.reference == expected.score  # exactly: the same rows, the same labels
    report = (out / "report.md").read_text()
    assert "**Accuracy gate: PASSED**" in report and f"Scored output: `{validation.output}`" in report


def _infer(client: httpx.Client, manifest: Manifest, x: np.ndarray, top_k: int | None) -> dict[str, np.ndarray]:
    (spec,) = manifest.inputs
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), BATCH):
        rows = x[start : start + BATCH]
        body = {"inputs": [{"name": spec.name, "datatype": spec.datatype, "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
        if top_k is not None:
            body["parameters"] = {"top_k": top_k}
        response = client.post(f"/v2/models/{manifest.name}/infer", json=body)
        assert response.status_code == 200, response.text
        for output in response.json()["outputs"]:
            dtype = object if output["datatype"] == "BYTES" else None
            parts.setdefault(output["name"], []).append(np.array(output["data"], dtype=dtype).reshape(output["shape"]))
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_local_serves_the_originals_labels_and_probabilities(zoo_build: tuple[str, Path, Path]) -> None:
    name, project, out = zoo_build
    expected = Expected.load(project)
    manifest = load_manifest(out / "manifest.json")
    x = np.load(project / "heldout.npz")["x"]
    assert manifest.validation is not None
    gated = manifest.validation.extra["max_abs_output_diff"]
    tolerance = 1e-3 if manifest.compression.get("method") == "none" else gated + 1e-4
    if "max score difference" in [check["name"] for check in manifest.validation.extra["checks"]]:
        assert gated <= 1e-2
    with (
        running(out, LocalRunOptions(cache_dir=CACHE_DIR), console=quiet_console()) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        if manifest.task == "classification":
            answers = _infer(client, manifest, x, top_k=len(expected.classes))
            labels = answers["label"][:, 0]
            order = {label: index for index, label in enumerate(expected.classes)}
            probabilities = np.zeros((len(x), len(expected.classes)))
            for row, (row_labels, row_scores) in enumerate(zip(answers["label"], answers["score"])):
                for label, score in zip(row_labels, row_scores):
                    probabilities[row, order[label]] = score
            own = [spec.name for spec in manifest.outputs if spec.name not in ("label", "score")]
            predicted = client.post("/predict", json={"instances": x[:2].tolist()}).json()["predictions"]
            assert sorted(predicted[0]["outputs"]) == sorted(own)  # /predict returns every output
        else:
            label_output, scores_output = RAW_OUTPUTS[name]
            answers = _infer(client, manifest, x, top_k=None)
            scores = answers[scores_output].astype(np.float64)
            probabilities = scores if label_output else _softmax(scores)
            labels = answers[label_output] if label_output else np.array([str(i) for i in probabilities.argmax(axis=1)], dtype=object)
        if manifest.explain is not None:
            _assert_explains_a_numeric_output(client, manifest, x[:1])
    agreement = float(np.mean(labels.astype(str) == expected.predictions.astype(str)))
    assert agreement >= 0.99, f"{name}: served labels agree with the original on {agreement:.2%} of rows"
    difference = float(np.max(np.abs(probabilities - expected.probabilities)))
    assert difference <= tolerance, f"{name}: served probabilities differ from the original's by up to {difference:.2g}"


def _assert_explains_a_numeric_output(client: httpx.Client, manifest: Manifest, row: np.ndarray) -> None:
    (spec,) = manifest.inputs
    body = {"inputs": [{"name": spec.name, "datatype": spec.datatype, "shape": list(row.shape), "data": row.ravel().tolist()}]}
    response = client.post(f"/v2/models/{manifest.name}/explain", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    parameters = answer["parameters"]
    attributions = next(output for output in answer["outputs"] if output["name"] == "attributions")
    assert attributions["shape"] == list(row.shape)
    total = parameters["base_value"] + float(np.sum(attributions["data"]))
    assert abs(total - parameters["output_value"]) <= max(1e-3 * abs(parameters["output_value"]), 1e-4) or not parameters["exact"]
    assert "label" not in parameters["explained"]  # the served scores or a float output, never a string label
