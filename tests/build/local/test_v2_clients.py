"""Real Open Inference Protocol clients against `slimserve local`, as users run them, with their
default headers: KServe's Python SDK (`kserve.InferenceRESTClient`, which puts model_name and id
in every body) and Triton's (`tritonclient.http`, binary tensors by default, no Content-Type and
no Accept), for metadata, readiness and inference, JSON and binary, through the default stack
(HTTP API + IAM, requests signed with SigV4) and a REST API with API keys.

HTTP APIs base64 every non-text body and decode every base64 answer. The REST stack lists every
media type as binary (*/*), so it passes every body unchanged and decodes binary answers
whatever the client's Accept says: nothing to add for either client on either API."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from slimserve.build.local.run import LocalServer

from localkit import credential_lines, credentials, serve_shape

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("v2-clients")]

CLIENT_SHAPES = ["http-iam", "rest-api_key"]


@pytest.fixture(scope="module", params=CLIENT_SHAPES)
def served(request: pytest.FixtureRequest, digits_build: Path, minilm_build: Path, cache_dir: Path) -> Iterator[tuple[str, dict[str, LocalServer]]]:
    with ExitStack() as started:
        servers = serve_shape(request.param, {"digits": digits_build, "minilm": minilm_build}, cache_dir, started)
        yield request.param, {name: server for name, (server, _) in servers.items()}


def pixels(rows: int) -> np.ndarray:
    return (np.arange(rows * 64, dtype=np.float32).reshape(rows, 64) % 17).astype(np.float32)


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


# --- KServe ---------------------------------------------------------------------------------------


class ShapeAuth(httpx.Auth):
    """The stack shape's credentials on every request: a SigV4 signature over the exact body
    (botocore, made-up credentials) or the API key."""

    requires_request_body = True

    def __init__(self, shape: str) -> None:
        self.shape = shape

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        signed = credentials(self.shape, request.method, str(request.url), request.content, dict(request.headers))
        request.headers.update(signed)
        yield request


def kserve_client(shape: str):
    from kserve import InferenceRESTClient, RESTConfig

    return InferenceRESTClient(RESTConfig(protocol="v2", auth=ShapeAuth(shape), timeout=30))


def test_kserve_readiness_and_metadata(served) -> None:
    from kserve.protocol.rest.v2_datamodels import (
        ModelMetadataResponse,
        ModelReadyResponse,
        ServerMetadataResponse,
    )

    shape, servers = served
    url = servers["digits"].url

    async def readiness() -> tuple[bool, bool, bool]:
        async with kserve_client(shape) as client:
            return (
                await client.is_server_live(url),
                await client.is_server_ready(url),
                await client.is_model_ready(url, "digits"),
            )

    assert run(readiness()) == (True, True, True)
    # The SDK's REST client has no metadata calls: its own response models read ours.
    with httpx.Client(auth=ShapeAuth(shape), timeout=30) as http:
        server = ServerMetadataResponse.model_validate(http.get(url + "/v2").json())
        model = ModelMetadataResponse.model_validate(http.get(url + "/v2/models/digits").json())
        ready = ModelReadyResponse.model_validate(http.get(url + "/v2/models/digits/ready").json())
    assert "binary_tensor_data" in server.extensions
    assert [(t.name, t.datatype, t.shape) for t in model.inputs] == [("pixels", "FP32", [-1, 64])]
    assert ready.ready


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_infer(served, binary: bool) -> None:
    from kserve import InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    shape, servers = served
    batch = pixels(3)
    tensor = InferInput("pixels", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    outputs = [RequestedOutput("logits", {"binary_data": binary}), RequestedOutput("label")]
    request = InferRequest("digits", [tensor], request_id="kserve-1", request_outputs=outputs)

    async def infer():
        async with kserve_client(shape) as client:
            return await client.infer(servers["digits"].url, request, model_name="digits")

    response = run(infer())
    assert response.id == "kserve-1" and response.model_name == "digits"
    by_name = {output.name: output for output in response.outputs}
    logits = by_name["logits"].as_numpy()
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    assert [str(label) for label in by_name["label"].as_numpy().ravel()] == [str(v) for v in logits.argmax(axis=1)]


def test_kserve_embeds_text(served) -> None:
    from kserve import InferInput, InferRequest

    shape, servers = served
    texts = ["A man is eating food.", "A man is eating a piece of bread."]
    request = InferRequest("minilm", [InferInput("text", [2], "BYTES", data=texts)])

    async def infer():
        async with kserve_client(shape) as client:
            return await client.infer(servers["minilm"].url, request, model_name="minilm")

    vectors = run(infer()).outputs[0].as_numpy()
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_kserve_reports_the_handlers_error(served) -> None:
    from kserve import InferInput, InferRequest

    shape, servers = served
    request = InferRequest("digits", [InferInput("pixels", [1, 8], "FP32", data=[0.0] * 8)])

    async def infer():
        async with kserve_client(shape) as client:
            return await client.infer(servers["digits"].url, request, model_name="digits")

    with pytest.raises(httpx.HTTPStatusError, match=r"the model expects \[-1, 64\].*400 Bad Request"):
        run(infer())


# --- Triton ---------------------------------------------------------------------------------------


@pytest.fixture()
def triton(served):
    import tritonclient.http as httpclient

    shape, servers = served
    parts = urlsplit(servers["digits"].url)
    client = httpclient.InferenceServerClient(url=f"{parts.netloc}{parts.path}", network_timeout=30.0)
    # tritonclient takes fixed headers per call: the local gateway checks a signature's shape.
    auth = dict(line.split(": ", 1) for line in credential_lines(shape))
    yield client, auth
    client.close()


def test_triton_readiness_and_metadata(triton) -> None:
    client, auth = triton
    assert client.is_server_live(headers=auth) and client.is_server_ready(headers=auth)
    assert client.is_model_ready("digits", headers=auth)
    assert "binary_tensor_data" in client.get_server_metadata(headers=auth)["extensions"]
    inputs = client.get_model_metadata("digits", headers=auth)["inputs"]
    assert inputs == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_infer(triton, binary: bool) -> None:
    import tritonclient.http as httpclient

    client, auth = triton
    batch = pixels(4)
    tensor = httpclient.InferInput("pixels", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("logits", "label")]
    result = client.infer("digits", inputs=[tensor], outputs=outputs, request_id="triton-1", headers=auth)
    logits = result.as_numpy("logits")
    assert logits.shape == (4, 10)
    labels = [v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy("label").ravel()]
    assert labels == [str(v) for v in logits.argmax(axis=1)]
    assert result.get_response()["id"] == "triton-1"


def test_triton_default_binary_request_and_outputs(triton) -> None:
    """tritonclient's defaults: binary input and outputs, neither Content-Type nor Accept (the
    credentials are the only headers). Both APIs pass the body and the answer as bytes."""
    import tritonclient.http as httpclient

    client, auth = triton
    tensor = httpclient.InferInput("pixels", [1, 64], "FP32")
    tensor.set_data_from_numpy(pixels(1))  # binary_data=True by default
    result = client.infer("digits", inputs=[tensor], headers=auth)
    assert result.as_numpy("logits").shape == (1, 10)
    assert all("data" not in output for output in result.get_response()["outputs"])  # binary outputs


def test_triton_reports_the_handlers_error(triton) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client, auth = triton
    tensor = httpclient.InferInput("pixels", [1, 8], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 8), dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException, match=r"the model expects \[-1, 64\]"):
        client.infer("digits", inputs=[tensor], headers=auth)
