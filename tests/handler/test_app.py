"""The Open Inference Protocol app over the real digits model, through HTTP semantics."""

from __future__ import annotations

import json

import numpy as np
import pytest


def infer_body(pixels: np.ndarray, **extra) -> dict:
    return {
        "inputs": [{"name": "pixels", "shape": list(pixels.shape), "datatype": "FP32", "data": pixels.ravel().tolist()}],
        **extra,
    }


def test_server_metadata_advertises_binary_extension(client) -> None:
    response = client.get("/v2")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "slimserve"
    assert "binary_tensor_data" in body["extensions"]


@pytest.mark.parametrize("path,key", [("/v2/health/live", "live"), ("/v2/health/ready", "ready")])
def test_health(client, path: str, key: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {key: True}


def test_model_metadata_describes_tensors(client) -> None:
    body = client.get("/v2/models/digits").json()
    assert body["name"] == "digits"
    assert body["versions"] == ["1"]
    assert body["platform"] == "onnx_onnxv1"
    assert body["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert [o["name"] for o in body["outputs"]] == ["logits", "label", "score"]
    assert client.get("/v2/models/digits/versions/1").json() == body


def test_model_ready(client) -> None:
    assert client.get("/v2/models/digits/ready").json() == {"name": "digits", "ready": True}
    assert client.get("/v2/models/digits/versions/1/ready").json() == {"name": "digits", "ready": True}


def test_infer_returns_the_right_digits(client, heldout) -> None:
    pixels, labels = heldout
    batch = pixels[:32]
    response = client.post("/v2/models/digits/infer", json=infer_body(batch, id="req-7"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "digits" and body["model_version"] == "1" and body["id"] == "req-7"
    outputs = {o["name"]: o for o in body["outputs"]}
    logits = np.array(outputs["logits"]["data"]).reshape(outputs["logits"]["shape"])
    assert logits.shape == (32, 10)
    accuracy = (logits.argmax(axis=1) == labels[:32]).mean()
    assert accuracy >= 0.9
    assert outputs["label"]["shape"] == [32, 1]
    assert outputs["label"]["data"] == [str(d) for d in logits.argmax(axis=1)]
    assert all(0.0 <= s <= 1.0 for s in outputs["score"]["data"])
    assert response.headers["x-request-id"]


def test_infer_first_heldout_image_is_its_label(client, heldout) -> None:
    pixels, labels = heldout
    body = infer_body(pixels[:1], outputs=[{"name": "label"}])
    response = client.post("/v2/models/digits/infer", json=body)
    assert response.status_code == 200
    (label,) = response.json()["outputs"]
    assert label["name"] == "label"
    assert label["data"] == [str(labels[0])]


def test_top_k_parameter(client, heldout) -> None:
    pixels, _ = heldout
    body = infer_body(pixels[:2], parameters={"top_k": 3}, outputs=[{"name": "label"}, {"name": "score"}])
    outputs = {o["name"]: o for o in client.post("/v2/models/digits/infer", json=body).json()["outputs"]}
    assert outputs["label"]["shape"] == [2, 3]
    scores = np.array(outputs["score"]["data"]).reshape(2, 3)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_versioned_infer(client, heldout) -> None:
    pixels, _ = heldout
    assert client.post("/v2/models/digits/versions/1/infer", json=infer_body(pixels[:1])).status_code == 200
    response = client.post("/v2/models/digits/versions/9/infer", json=infer_body(pixels[:1]))
    assert response.status_code == 404
    assert response.json() == {"error": "version '9' of model 'digits' not found; available: ['1']"}


def test_nested_data_is_accepted(client, heldout) -> None:
    pixels, _ = heldout
    body = {"inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "data": pixels[:2].tolist()}]}
    assert client.post("/v2/models/digits/infer", json=body).status_code == 200


GOOD = {"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}


def with_input(**changes) -> dict:
    return {"inputs": [{**GOOD, **changes}]}


BAD_REQUESTS = [
    ("unknown input", with_input(name="image"), 400, "unknown input 'image'; this model takes ['pixels']"),
    ("wrong shape", with_input(shape=[1, 63], data=[0.0] * 63), 400, "input 'pixels' has shape [1, 63] but the model expects [-1, 64] (dimension 1 must be 64)"),
    ("wrong rank", with_input(shape=[64], data=[0.0] * 64), 400, "input 'pixels' has shape [64] but the model expects rank 2 [-1, 64] (-1 = any size)"),
    ("wrong datatype", with_input(datatype="INT64", data=[0] * 64), 400, "input 'pixels' has datatype INT64 but the model expects FP32"),
    ("unknown datatype", with_input(datatype="FLOAT"), 422, "invalid inference request at 'inputs.0.datatype'"),
    ("element count", with_input(data=[0.0] * 10), 400, "input 'pixels' has 10 elements but shape [1, 64] needs 64"),
    ("strings in FP32", with_input(data=["a"] * 64), 400, "input 'pixels' is FP32: every element must be numbers"),
    ("ragged", with_input(shape=[2, 64], data=[[0.0] * 64, [0.0] * 3]), 400, "not a rectangular array"),
    ("null element", with_input(data=[None] * 64), 400, "every element must be numbers"),
    ("negative dim", with_input(shape=[-1, 64]), 400, "has a negative dimension"),
    ("no inputs", {"inputs": []}, 422, "invalid inference request at 'inputs'"),
    ("missing inputs key", {}, 422, "invalid inference request at 'inputs': Field required"),
    ("missing data", {"inputs": [{k: v for k, v in GOOD.items() if k != "data"}]}, 400, "input 'pixels' has no 'data'"),
    ("duplicate input", {"inputs": [GOOD, GOOD]}, 400, "input 'pixels' is given more than once"),
    ("unknown output", {**with_input(), "outputs": [{"name": "probs"}]}, 404, "unknown output(s) ['probs']"),
    ("huge batch", with_input(shape=[100000, 64], data=[0.0]), 400, "batch size 100000 exceeds the limit of 64"),
    ("shape as strings", with_input(shape=["1", "64"]), 422, "invalid inference request at 'inputs.0.shape.0': Input should be a valid integer"),
    ("shape with a boolean", with_input(shape=[True, 64]), 422, "invalid inference request at 'inputs.0.shape.0': Input should be a valid integer"),
    ("other model in the body", {**with_input(), "model_name": "other"}, 400, "model_name 'other' in the body does not match the path's 'digits'"),
    ("other version in the body", {**with_input(), "model_version": "7"}, 400, "model_version '7' in the body does not match the served version '1'"),
    ("bad top_k", {**with_input(), "parameters": {"top_k": 11}}, 400, "parameters.top_k must be an integer from 1 to 10"),
    ("bad binary flag", {**with_input(), "parameters": {"binary_data_output": "yes"}}, 400, "binary_data_output must be true or false"),
]


@pytest.mark.parametrize("case,body,status,message", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_clear_4xx(client, case: str, body: dict, status: int, message: str) -> None:
    response = client.post("/v2/models/digits/infer", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error
    assert set(response.json()) == {"error"}


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"{bad json", "request body is not valid JSON"),
        (b"", "request body is empty"),
        (b"[1, 2]", "request body must be a JSON object, got list"),
        (b"\xff\xfe", "request body is not valid UTF-8"),
        (b'{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [NaN]}]}', "non-finite number NaN"),
        (b'{"inputs": [{"name": "pixels", "shape": [1, 1], "datatype": "FP32", "data": [1e999]}]}', "shape [1, 1]"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_malformed_bodies(client, raw: bytes, message: str) -> None:
    response = client.post("/v2/models/digits/infer", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_infinity_is_refused(client) -> None:
    body = with_input(data=[1e999] + [0.0] * 63)
    raw = json.dumps(body).replace("Infinity", "1e999")
    response = client.post("/v2/models/digits/infer", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": "input 'pixels' contains NaN or Infinity; only finite numbers are accepted"}


def test_unknown_model_is_404(client) -> None:
    response = client.get("/v2/models/resnet")
    assert response.status_code == 404
    assert response.json() == {"error": "model 'resnet' not found; this endpoint serves 'digits'"}
    assert client.post("/v2/models/resnet/infer", json=with_input()).status_code == 404


def test_unknown_route_and_method(client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404 and response.json() == {"error": "no route for GET /nope"}
    response = client.delete("/v2/models/digits")
    assert response.status_code == 405 and response.json() == {"error": "method DELETE is not allowed on /v2/models/digits"}


def test_oversized_body_refused_by_content_length(client, digits_model) -> None:
    limit = digits_model.manifest.runtime.limits.max_body_bytes
    response = client.post("/v2/models/digits/infer", content=b" " * (limit + 1), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": f"request body of {limit + 1} bytes exceeds the limit of {limit} bytes"}


def test_request_id_is_echoed_from_header(client) -> None:
    response = client.get("/v2/health/live", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
