"""The binary tensor extension on the digits model, directly and through API Gateway events
(which carry binary bodies base64-encoded in both directions)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from eventkit import make_event


def binary_request(pixels: np.ndarray, *, binary_output: bool = True) -> tuple[bytes, dict[str, str]]:
    raw = pixels.astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [{"name": "pixels", "shape": list(pixels.shape), "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "logits", "parameters": {"binary_data": binary_output}}, {"name": "label"}],
        }
    ).encode()
    return header + raw, {"inference-header-content-length": str(len(header)), "content-type": "application/octet-stream"}


def split_response(body: bytes, header_length: int) -> tuple[dict, bytes]:
    return json.loads(body[:header_length]), body[header_length:]


def test_binary_round_trip_gives_the_same_logits_as_json(client, heldout) -> None:
    pixels, labels = heldout
    batch = pixels[:8]
    body, headers = binary_request(batch)
    response = client.post("/v2/models/digits/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    header, tail = split_response(response.content, int(response.headers["inference-header-content-length"]))
    logits_entry, label_entry = header["outputs"]
    assert logits_entry["parameters"]["binary_data_size"] == len(tail) == 8 * 10 * 4
    binary_logits = np.frombuffer(tail, dtype="<f4").reshape(8, 10)
    json_response = client.post(
        "/v2/models/digits/infer",
        json={"inputs": [{"name": "pixels", "shape": [8, 64], "datatype": "FP32", "data": batch.ravel().tolist()}]},
    ).json()
    json_logits = np.array(json_response["outputs"][0]["data"], dtype=np.float32).reshape(8, 10)
    np.testing.assert_array_equal(binary_logits, json_logits)
    assert label_entry["data"] == [str(v) for v in binary_logits.argmax(axis=1)]


@pytest.mark.parametrize(
    "header_length,message",
    [
        ("abc", "Inference-Header-Content-Length must be a non-negative integer, got 'abc'"),
        ("-5", "Inference-Header-Content-Length must be a non-negative integer, got '-5'"),
        ("+10", "Inference-Header-Content-Length must be a non-negative integer, got '+10'"),
        ("1_0", "Inference-Header-Content-Length must be a non-negative integer, got '1_0'"),
        ("999999999", "Inference-Header-Content-Length 999999999 is outside the body's"),
        ("10", "inference request header is not valid JSON"),
    ],
)
def test_lying_header_length(client, heldout, header_length: str, message: str) -> None:
    body, headers = binary_request(heldout[0][:1])
    headers["inference-header-content-length"] = header_length
    response = client.post("/v2/models/digits/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_binary_size_that_lies(client, heldout) -> None:
    body, headers = binary_request(heldout[0][:1])
    header_length = int(headers["inference-header-content-length"])
    truncated = body[: header_length + 100]
    response = client.post("/v2/models/digits/infer", content=truncated, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": "input 'pixels' declares binary_data_size 256 but only 100 bytes of binary data remain"}
    response = client.post("/v2/models/digits/infer", content=body + b"\x00" * 4, headers=headers)
    assert response.json() == {"error": "4 bytes of binary data are not claimed by any input"}


def test_binary_nan_is_refused(client) -> None:
    pixels = np.zeros((1, 64), dtype=np.float32)
    pixels[0, 3] = np.nan
    body, headers = binary_request(pixels)
    response = client.post("/v2/models/digits/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": "input 'pixels' contains NaN or Infinity; only finite numbers are accepted"}


@pytest.mark.parametrize("kind", ["http", "rest", "http-stage", "function-url", "alb"])
def test_binary_through_gateway_events(lambda_handler, heldout, kind: str) -> None:
    pixels, labels = heldout
    body, headers = binary_request(pixels[:3])
    event = make_event(kind, "POST", "/v2/models/digits/infer", body, headers=headers, base64=True)
    result = lambda_handler(event, None)
    assert result["statusCode"] == 200, result
    assert result["isBase64Encoded"] is True
    raw = base64.b64decode(result["body"])
    response_headers = {k.lower(): v for k, v in result["headers"].items()}
    header, tail = split_response(raw, int(response_headers["inference-header-content-length"]))
    logits = np.frombuffer(tail, dtype="<f4").reshape(3, 10)
    assert list(logits.argmax(axis=1)) == list(labels[:3])
    assert header["outputs"][1]["data"] == [str(v) for v in labels[:3]]


def test_invalid_base64_event_body(lambda_handler) -> None:
    event = make_event("http", "POST", "/v2/models/digits/infer", b"x")
    event["body"], event["isBase64Encoded"] = "abc", True
    result = lambda_handler(event, None)
    assert result["statusCode"] == 400
    assert json.loads(result["body"]) == {"error": "request body is marked isBase64Encoded but is not valid base64"}
