"""Every datatype onnxruntime takes, plus BYTES, round-trips through JSON and binary tensors."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from fastapi.testclient import TestClient

from slimserve.handler.app import create_app
from slimserve.handler.datatypes import V2_TO_NUMPY
from slimserve.handler.model import load_model

from toymodels import ONNX_TYPES, identity_all_types

SAMPLES = {
    "BOOL": [[True, False], [False, True]],
    "UINT8": [[0, 255], [7, 8]],
    "UINT16": [[0, 65535], [7, 8]],
    "UINT32": [[0, 4294967295], [7, 8]],
    "UINT64": [[0, 2**63], [7, 8]],
    "INT8": [[-128, 127], [7, 8]],
    "INT16": [[-32768, 32767], [7, 8]],
    "INT32": [[-(2**31), 2**31 - 1], [7, 8]],
    "INT64": [[-(2**63), 2**63 - 1], [7, 8]],
    "FP16": [[0.5, -2.0], [1024.0, 0.25]],
    "FP32": [[0.5, -2.5], [3.25, 1e-3]],
    "FP64": [[0.1, -2.5e-300], [3.25, 1e300]],
    "BYTES": [["héllo", ""], ["a b", "∑"]],
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    folder = identity_all_types(tmp_path_factory.mktemp("identity"))
    with TestClient(create_app(load_model(folder, intra_op_threads=1)), raise_server_exceptions=False) as test_client:
        yield test_client


def full_request(binary: set[str] = frozenset(), binary_output: bool = False) -> tuple[bytes, dict[str, str]]:
    header_inputs, chunks = [], []
    for datatype, sample in SAMPLES.items():
        entry = {"name": f"x_{datatype.lower()}", "shape": [2, 2], "datatype": datatype}
        if datatype in binary:
            raw = encode_binary(datatype, sample)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = sample
        header_inputs.append(entry)
    header = json.dumps({"inputs": header_inputs, "parameters": {"binary_data_output": binary_output}}).encode()
    headers = {"content-type": "application/octet-stream" if chunks else "application/json"}
    if chunks:
        headers["inference-header-content-length"] = str(len(header))
    return header + b"".join(chunks), headers


def encode_binary(datatype: str, sample) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for row in sample for s in row)
    return np.array(sample, dtype=V2_TO_NUMPY[datatype]).astype(V2_TO_NUMPY[datatype].newbyteorder("<")).tobytes()


def decode_response(response) -> dict[str, np.ndarray]:
    body = response.content
    length = int(response.headers.get("inference-header-content-length", len(body)))
    header, offset, tensors = json.loads(body[:length]), length, {}
    for output in header["outputs"]:
        datatype = output["datatype"]
        if "data" in output:
            tensors[output["name"]] = np.array(output["data"], dtype=object if datatype == "BYTES" else V2_TO_NUMPY[datatype]).reshape(output["shape"])
            continue
        size = output["parameters"]["binary_data_size"]
        raw = body[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            items, cursor = [], 0
            while cursor < len(raw):
                (n,) = struct.unpack_from("<I", raw, cursor)
                items.append(raw[cursor + 4 : cursor + 4 + n].decode())
                cursor += 4 + n
            tensors[output["name"]] = np.array(items, dtype=object).reshape(output["shape"])
        else:
            tensors[output["name"]] = np.frombuffer(raw, dtype=V2_TO_NUMPY[datatype].newbyteorder("<")).reshape(output["shape"])
    assert offset == len(body)
    return tensors


def assert_round_trip(tensors: dict[str, np.ndarray]) -> None:
    assert set(tensors) == {f"y_{d.lower()}" for d in ONNX_TYPES}
    for datatype, sample in SAMPLES.items():
        got = tensors[f"y_{datatype.lower()}"]
        expected = np.array(sample, dtype=object if datatype == "BYTES" else V2_TO_NUMPY[datatype])
        assert got.shape == (2, 2)
        assert (got == expected).all(), (datatype, got, expected)


def test_json_in_json_out(client) -> None:
    body, headers = full_request()
    response = client.post("/v2/models/identity/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert_round_trip(decode_response(response))


def test_binary_in_binary_out(client) -> None:
    body, headers = full_request(binary=set(SAMPLES), binary_output=True)
    response = client.post("/v2/models/identity/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert int(response.headers["inference-header-content-length"]) < len(response.content)
    assert_round_trip(decode_response(response))


def test_mixed_binary_and_json(client) -> None:
    body, headers = full_request(binary={"FP32", "BYTES", "BOOL"}, binary_output=False)
    response = client.post("/v2/models/identity/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert_round_trip(decode_response(response))


def test_per_output_binary_flag(client) -> None:
    body, headers = full_request()
    request = json.loads(body)
    request["outputs"] = [{"name": "y_fp32", "parameters": {"binary_data": True}}, {"name": "y_int8"}]
    response = client.post("/v2/models/identity/infer", json=request)
    tensors = decode_response(response)
    assert list(tensors) == ["y_fp32", "y_int8"]
    header = json.loads(response.content[: int(response.headers["inference-header-content-length"])])
    assert "data" not in header["outputs"][0] and header["outputs"][1]["data"] == [-128, 127, 7, 8]


@pytest.mark.parametrize(
    "datatype,data,message",
    [
        ("INT8", [[128, 0], [0, 0]], "input 'x_int8' has values outside the INT8 range"),
        ("UINT8", [[-1, 0], [0, 0]], "input 'x_uint8' has values outside the UINT8 range"),
        ("INT32", [[1.5, 0], [0, 0]], "input 'x_int32' is INT32: every element must be integers"),
        ("BOOL", [[1, 0], [0, 1]], "input 'x_bool' is BOOL: every element must be booleans"),
        ("FP16", [[1e6, 0], [0, 0]], "input 'x_fp16' has values outside the FP16 range"),
        ("BYTES", [[1, 2], [3, 4]], "input 'x_bytes' is BYTES: every element must be a string"),
    ],
)
def test_values_that_do_not_fit_their_datatype(client, datatype: str, data, message: str) -> None:
    body = json.loads(full_request()[0])
    for entry in body["inputs"]:
        if entry["datatype"] == datatype:
            entry["data"] = data
    response = client.post("/v2/models/identity/infer", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": message}
