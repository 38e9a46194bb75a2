"""Edges of the protocol that real clients and hostile requests reach: extensible request
objects (KServe's client), text that is not Unicode, valid inputs that drive the model to
non-finite outputs, and error messages that must not grow with what they quote."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from fastapi.testclient import TestClient

from slimserve.handler.app import create_app
from slimserve.handler.errors import MAX_MESSAGE_CHARS, BadRequest, clip
from slimserve.handler.model import load_model

from toymodels import identity_all_types

FP32_MAX = float(np.finfo(np.float32).max)


def pixels_body(value: float | list[float], **extra) -> dict:
    data = value if isinstance(value, list) else [value] * 64
    return {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": data}], **extra}


# --- extensible objects --------------------------------------------------------------------


def test_kserve_style_body_with_model_name_and_unknown_fields_is_accepted(client) -> None:
    body = pixels_body(0.0, model_name="digits", model_version="1", signature_name="serving_default", foo={"x": 1})
    body["inputs"][0]["foo"] = "ignored"
    body["outputs"] = [{"name": "label", "foo": 1}]
    response = client.post("/v2/models/digits/infer", json=body)
    assert response.status_code == 200, response.text
    assert [output["name"] for output in response.json()["outputs"]] == ["label"]


def test_predict_ignores_unknown_fields_like_signature_name(client) -> None:
    response = client.post("/predict", json={"signature_name": "serving_default", "instances": [[0.0] * 64]})
    assert response.status_code == 200, response.text


def test_model_metadata_advertises_the_request_limits(client) -> None:
    limits = client.get("/v2/models/digits").json()["parameters"]["limits"]
    assert limits["max_batch"] == 64 and limits["max_body_bytes"] > 0 and limits["max_elements"] > 0


# --- text that is not Unicode ------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity_client(tmp_path_factory: pytest.TempPathFactory):
    folder = identity_all_types(tmp_path_factory.mktemp("identity"))
    with TestClient(create_app(load_model(folder, intra_op_threads=1)), raise_server_exceptions=False) as test_client:
        yield test_client


def bytes_body(texts: list[str]) -> str:
    """A request whose BYTES input holds ``texts``; json.dumps writes lone surrogates as \\uXXXX."""
    inputs = []
    for datatype in ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"):
        inputs.append({"name": f"x_{datatype.lower()}", "shape": [1, 2], "datatype": datatype,
                       "data": [True, False] if datatype == "BOOL" else [1, 2]})
    inputs.append({"name": "x_bytes", "shape": [1, 2], "datatype": "BYTES", "data": texts})
    return json.dumps({"inputs": inputs})


@pytest.mark.parametrize(
    "texts,message",
    [
        (["ok", "\ud800"], "input 'x_bytes' element 1 is not valid Unicode: lone surrogate U+D800 at character 0"),
        (["\udc00 low", "ok"], "input 'x_bytes' element 0 is not valid Unicode: lone surrogate U+DC00 at character 0"),
        (["ok", "ab\udc00\ud800"], "input 'x_bytes' element 1 is not valid Unicode: lone surrogate U+DC00 at character 2"),
    ],
    ids=["high", "low", "reversed-pair"],
)
def test_lone_surrogates_are_a_400_naming_input_element_and_position(identity_client, texts, message) -> None:
    response = identity_client.post(
        "/v2/models/identity/infer", content=bytes_body(texts), headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_a_proper_surrogate_pair_is_an_emoji_and_is_accepted(identity_client) -> None:
    response = identity_client.post(
        "/v2/models/identity/infer", content=bytes_body(["\U0001f389", "é"]), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    (texts,) = [output["data"] for output in response.json()["outputs"] if output["name"] == "y_bytes"]
    assert texts == ["\U0001f389", "é"]


# --- valid inputs, non-finite outputs -------------------------------------------------------


@pytest.mark.parametrize("value", [FP32_MAX, -FP32_MAX, 1e38, [FP32_MAX, -FP32_MAX] * 32], ids=["max", "min", "1e38", "alternating"])
def test_valid_extreme_inputs_get_a_422_never_a_5xx_or_invalid_json(client, value) -> None:
    response = client.post("/v2/models/digits/infer", json=pixels_body(value))
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    assert message.startswith("the model's output 'logits' is not finite (NaN or Infinity) for row 0 of this input")
    assert "binary_data_output" in message


def test_predict_with_extreme_inputs_is_a_422_with_valid_json(client) -> None:
    response = client.post("/predict", json={"instances": [[FP32_MAX] * 64]})
    assert response.status_code == 422
    assert "NaN" not in response.text.replace("(NaN or Infinity)", "")
    json.loads(response.text)  # strict JSON: no NaN literal anywhere


def test_binary_outputs_carry_the_raw_non_finite_values(client) -> None:
    header = json.dumps({**pixels_body(FP32_MAX), "parameters": {"binary_data_output": True}}).encode()
    response = client.post("/v2/models/digits/infer", content=header, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    document = json.loads(response.content[:length])
    logits = next(output for output in document["outputs"] if output["name"] == "logits")
    raw = response.content[length : length + logits["parameters"]["binary_data_size"]]
    values = np.frombuffer(raw, dtype="<f4")
    assert values.shape == (10,) and not np.isfinite(values).all()


# --- bounded error messages --------------------------------------------------------------------


def test_clip_cuts_long_echoes_and_says_how_much() -> None:
    assert clip("short") == "short"
    clipped = clip("x" * 2_000_000)
    assert clipped.startswith("x" * 64) and clipped.endswith("...(1999936 more characters)")
    assert len(clipped) < 100


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/v2/models/" + "m" * 8_000 + "/infer", pixels_body(0.0)),
        ("POST", "/v2/models/digits/versions/" + "9" * 8_000 + "/infer", pixels_body(0.0)),
        ("POST", "/v2/models/digits/infer", pixels_body(0.0, model_name="\"" * 1_000_000)),
        ("POST", "/v2/models/digits/infer", {"inputs": [{"name": "p" * 200, "shape": [1], "datatype": "FP32", "data": [1]}]}),
        ("GET", "/" + "x" * 8_000, None),
        ("DELETE", "/v2/models/digits/infer", None),
    ],
    ids=["model-name", "version", "body-model-name", "input-name", "route", "method"],
)
def test_errors_that_quote_the_request_stay_short(client, method: str, path: str, body: dict | None) -> None:
    response = client.request(method, path, json=body)
    assert 400 <= response.status_code < 500
    assert len(response.content) < 600, response.text[:300]


def test_every_error_message_is_capped_at_the_mapping_point(digits_model) -> None:
    from slimserve.handler.app import Call, Route, SlimserveApp
    from slimserve.handler.service import InferenceService

    def endpoint(call: Call):
        raise BadRequest("y" * 5_000_000)

    app = SlimserveApp(InferenceService(digits_model), [Route("GET", "/boom", endpoint)], max_body_bytes=1024)
    with TestClient(app) as test_client:
        response = test_client.get("/boom")
    assert response.status_code == 400
    assert len(response.json()["error"]) <= MAX_MESSAGE_CHARS + 40


def test_binary_strings_with_invalid_utf8_are_a_400(identity_client) -> None:
    inputs, chunks = [], []
    for datatype in ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"):
        inputs.append({"name": f"x_{datatype.lower()}", "shape": [1, 2], "datatype": datatype,
                       "data": [True, False] if datatype == "BOOL" else [1, 2]})
    raw = b"".join(struct.pack("<I", len(part)) + part for part in (b"ok", b"\xff\xfe"))
    inputs.append({"name": "x_bytes", "shape": [1, 2], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}})
    header = json.dumps({"inputs": inputs}).encode()
    chunks.append(raw)
    response = identity_client.post(
        "/v2/models/identity/infer",
        content=header + b"".join(chunks),
        headers={"inference-header-content-length": str(len(header)), "content-type": "application/octet-stream"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "input 'x_bytes' has BYTES elements that are not valid UTF-8"}
