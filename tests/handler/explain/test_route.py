"""POST /v2/models/{name}[/versions/{v}]/explain through the real Lambda handler (API Gateway
HTTP API events, Mangum, the app): attributions that add up to the served output, the budget
checked against the Lambda context's remaining time, metadata, and the lazy import."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eventkit import make_event
from toymodels import identity_all_types, tabular_classifier

DIGITS = "/v2/models/digits"


class Context:
    """Lambda's context as Mangum hands it to the app (scope["aws.context"])."""

    aws_request_id = "explain-test"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def pixels_body(row: np.ndarray, **parameters) -> dict:
    body: dict = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": row.tolist()}]}
    if parameters:
        body["parameters"] = parameters
    return body


def post(handler, path: str, body: dict, context=None) -> tuple[int, dict]:
    result = handler(make_event("http", "POST", path, json.dumps(body)), context)
    return result["statusCode"], json.loads(result["body"])


def by_name(document: dict) -> dict[str, dict]:
    return {output["name"]: output for output in document["outputs"]}


def test_digits_predicted_class_attributions_add_up_to_its_logit(lambda_handler, heldout) -> None:
    pixels, _ = heldout
    for row in pixels[[0, 7, 99]]:
        status, document = post(lambda_handler, f"{DIGITS}/explain", pixels_body(row))
        assert status == 200, document
        outputs = by_name(document)
        logits = np.array(outputs["logits"]["data"])
        predicted = int(np.argmax(logits))
        parameters = document["parameters"]
        assert (parameters["method"], parameters["target"], parameters["label"]) == ("kernel-shap", predicted, str(predicted))
        assert parameters["explained"] == f"logit of class {predicted} (output 'logits')"
        assert outputs["attributions"]["shape"] == [1, 64] and outputs["attributions"]["datatype"] == "FP32"
        assert outputs["base_value"]["shape"] == [1]
        attributions = np.array(outputs["attributions"]["data"])
        base = outputs["base_value"]["data"][0]
        # The served logit of the predicted class: base + sum of attributions.
        assert abs(base + attributions.sum() - logits[predicted]) < 1e-3
        assert parameters["residual"] < 1e-3 and parameters["output_value"] == pytest.approx(logits[predicted], abs=1e-6)
        # Pixels equal to every background image (the always-blank border) are not players.
        assert parameters["players"] < 64 and np.count_nonzero(attributions) == parameters["players"]


def test_digits_served_score_explained_on_request(lambda_handler, heldout) -> None:
    row = heldout[0][3]
    status, document = post(lambda_handler, f"{DIGITS}/explain", pixels_body(row, output="score", method="shapley-sampling"))
    assert status == 200, document
    outputs = by_name(document)
    score = outputs["score"]["data"][0]  # the served top-1 softmax probability
    total = outputs["base_value"]["data"][0] + float(np.sum(outputs["attributions"]["data"]))
    assert abs(total - score) < 1e-3
    assert document["parameters"]["explained"].endswith("(softmax probability)")


def test_target_by_label_seed_determinism_and_versioned_route(lambda_handler, heldout) -> None:
    row = heldout[0][5]
    first = post(lambda_handler, f"{DIGITS}/explain", pixels_body(row, target="3", seed=11, samples=256))
    again = post(lambda_handler, f"{DIGITS}/versions/1/explain", pixels_body(row, target=3, seed=11, samples=256))
    other = post(lambda_handler, f"{DIGITS}/explain", pixels_body(row, target=3, seed=12, samples=256))
    assert first[0] == again[0] == other[0] == 200
    attributions = [by_name(document)["attributions"]["data"] for _, document in (first, again, other)]
    assert attributions[0] == attributions[1] != attributions[2]
    assert first[1]["parameters"]["target"] == 3 and first[1]["parameters"]["samples"] == 256


def test_leave_one_out_reports_its_residual(lambda_handler, heldout) -> None:
    status, document = post(lambda_handler, f"{DIGITS}/explain", pixels_body(heldout[0][0], method="leave-one-out"))
    assert status == 200
    parameters = document["parameters"]
    assert parameters["model_evaluations"] == 16 * (parameters["players"] + 1)
    attributions = np.array(by_name(document)["attributions"]["data"])
    assert parameters["residual"] == pytest.approx(abs(parameters["base_value"] + attributions.sum() - parameters["output_value"]), abs=1e-3)


def test_over_budget_is_a_400_naming_the_limit(lambda_handler, heldout) -> None:
    row = heldout[0][0]
    status, document = post(lambda_handler, f"{DIGITS}/explain", pixels_body(row), Context(remaining_ms=900))
    assert status == 400
    assert re.fullmatch(
        r"this explanation needs [\d,]+ model evaluations \(about \d+\.\d\d s here\), more than the 0\.00 s this "
        r"invocation can spend \(0\.90 s left of the function's 20 s timeout, 1 s kept for the response\); lower "
        r"parameters\.samples \(now 1024\)",
        document["error"],
    ), document
    status, _ = post(lambda_handler, f"{DIGITS}/explain", pixels_body(row), Context(remaining_ms=15_000))
    assert status == 200


def test_metadata_advertises_the_methods(client) -> None:
    explain = client.get(DIGITS).json()["parameters"]["explain"]
    assert explain == {
        "methods": ["kernel-shap", "shapley-sampling", "leave-one-out"], "samples": 1024, "max_samples": 8192,
        "exact_max_players": 12, "image_shape": [8, 8], "patch": [1, 1],
    }


def test_binary_outputs(client, heldout) -> None:
    body = pixels_body(heldout[0][0], binary_data_output=True)
    response = client.post(f"{DIGITS}/explain", json=body)
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:length])
    sizes = {output["name"]: output["parameters"]["binary_data_size"] for output in header["outputs"]}
    assert sizes["attributions"] == 64 * 4 and sizes["base_value"] == 4


def test_tabular_model_gets_exact_kernel_shap(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from slimserve.handler.app import create_app
    from slimserve.handler.model import load_model

    app = create_app(load_model(tabular_classifier(tmp_path), intra_op_threads=1))
    row = np.random.default_rng(1).normal(size=8).round(3).tolist()
    body = {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": row}], "parameters": {"target": "class2"}}
    with TestClient(app) as client:
        document = client.post("/v2/models/tabular/explain", json=body).json()
    parameters = document["parameters"]
    assert parameters["exact"] is True and parameters["players"] == 8 and parameters["target"] == 2
    assert parameters["model_evaluations"] == (2**8 - 2 + 1) * 6
    logits = by_name(document)["logits"]["data"]
    attributions = by_name(document)["attributions"]["data"]
    assert abs(parameters["base_value"] + sum(attributions) - logits[2]) < 1e-5


def test_model_built_without_explanations_is_404(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from slimserve.handler.app import create_app
    from slimserve.handler.model import load_model

    app = create_app(load_model(identity_all_types(tmp_path), intra_op_threads=1))
    body = {"inputs": [{"name": "x_fp32", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    with TestClient(app) as client:
        response = client.post("/v2/models/identity/explain", json=body)
        assert "explain" not in client.get("/v2/models/identity").json()["parameters"]
    assert response.status_code == 404
    assert response.json() == {"error": "model 'identity' offers no explanations (explain.enabled = false, or a kind of model that gets none: its build log says which)"}


def test_handler_init_never_imports_the_explainer(digits_build: Path) -> None:
    code = "import sys, slimserve.handler.main; print(sorted(m for m in sys.modules if 'explain' in m))"
    env = {**os.environ, "SLIMSERVE_MODEL_DIR": str(digits_build), "SLIMSERVE_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
