"""A standard V2 client, unchanged: tritonclient.http against the app on 127.0.0.1, with
binary tensors on (its default) and off."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
import uvicorn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(digits_app) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(digits_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture()
def triton(server_url: str):
    client = httpclient.InferenceServerClient(url=server_url, network_timeout=30.0)
    yield client
    client.close()


def test_server_and_model_metadata(triton) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("digits")
    metadata = triton.get_server_metadata()
    assert "binary_tensor_data" in metadata["extensions"]
    model = triton.get_model_metadata("digits")
    assert model["inputs"][0] == {"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer(triton, heldout, binary: bool) -> None:
    pixels, labels = heldout
    batch = np.ascontiguousarray(pixels[:16])
    tensor = httpclient.InferInput("pixels", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("logits", "label")]
    result = triton.infer("digits", inputs=[tensor], outputs=outputs, request_id="triton-1")
    logits = result.as_numpy("logits")
    assert logits.shape == (16, 10) and logits.dtype == np.float32
    predicted = logits.argmax(axis=1)
    assert (predicted == labels[:16]).mean() >= 0.9
    decoded = [value.decode() if isinstance(value, bytes) else str(value) for value in result.as_numpy("label").ravel()]
    assert decoded == [str(v) for v in predicted]
    assert result.get_response()["id"] == "triton-1"


def test_client_sees_server_errors_as_exceptions(triton) -> None:
    from tritonclient.utils import InferenceServerException

    tensor = httpclient.InferInput("pixels", [1, 8], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 8), dtype=np.float32))
    with pytest.raises(InferenceServerException, match=r"the model expects \[-1, 64\]"):
        triton.infer("digits", inputs=[tensor])
