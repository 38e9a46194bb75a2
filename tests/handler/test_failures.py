"""A model that raises inside onnxruntime: 500 with the request id, a logged trace, and the next
request still works."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from slimserve.handler.app import create_app
from slimserve.handler.model import load_model

from toymodels import reshape_to_four


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    folder = reshape_to_four(tmp_path_factory.mktemp("reshape"))
    with TestClient(create_app(load_model(folder, intra_op_threads=1)), raise_server_exceptions=False) as test_client:
        yield test_client


def infer(client, rows: int, cols: int, request_id: str):
    body = {"inputs": [{"name": "x", "shape": [rows, cols], "datatype": "FP32", "data": [1.0] * (rows * cols)}]}
    return client.post("/v2/models/reshape/infer", json=body, headers={"x-request-id": request_id})


def test_model_error_is_500_with_request_id_and_recovers(client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="slimserve"):
        response = infer(client, 1, 3, "req-broken")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error.startswith("model execution failed: ") and error.endswith("; request id req-broken")
    assert "Traceback" not in error and "onnxruntime" not in error.lower().replace("model execution failed", "")
    assert response.headers["x-request-id"] == "req-broken"
    assert any(record.exc_info for record in caplog.records), "the trace is logged server-side"
    ok = infer(client, 2, 2, "req-ok")
    assert ok.status_code == 200
    assert ok.json()["outputs"][0]["data"] == [1.0, 1.0, 1.0, 1.0]
