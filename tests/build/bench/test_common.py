"""What every section sends: the infer request and the API Gateway event that carries it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from slimserve.build.bench import common
from slimserve.build.bench.common import (
    SENTENCE,
    Example,
    LambdaContextStub,
    http_api_event,
    infer_body,
)


def test_the_event_is_the_local_gateways_http_api_event_for_the_request() -> None:
    event = http_api_event("POST", "/v2/models/m/infer", b'{"inputs": []}')
    assert event["version"] == "2.0" and event["routeKey"] == "$default" and event["rawPath"] == "/v2/models/m/infer"
    assert event["requestContext"]["stage"] == "$default" and event["requestContext"]["http"]["method"] == "POST"
    assert event["body"] == '{"inputs": []}' and event["isBase64Encoded"] is False
    assert event["headers"]["content-type"] == "application/json"
    # As on HTTP API: a body that is not text or JSON arrives base64-encoded.
    binary = http_api_event(
        "POST", "/x", b"\x00\x01", headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "0"}
    )
    assert binary["isBase64Encoded"] is True and binary["body"] == "AAE="
    assert binary["headers"]["content-type"] == "application/octet-stream"
    assert binary["headers"]["inference-header-content-length"] == "0"
    empty = http_api_event("GET", "/v2/health/ready")
    assert "body" not in empty and "content-type" not in empty["headers"]


def test_mangum_serves_the_event_to_an_asgi_app() -> None:
    from mangum import Mangum

    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        seen.update(method=scope["method"], path=scope["path"], body=message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    body = b'{"inputs": [{"name": "x"}]}'
    result = Mangum(app, lifespan="off")(http_api_event("POST", "/v2/models/m/infer", body), LambdaContextStub())
    assert result["statusCode"] == 200
    assert seen == {"method": "POST", "path": "/v2/models/m/infer", "body": body}


def test_the_benchmark_never_reads_the_repositorys_tests_folder() -> None:
    # Shipped code runs from site-packages, where there is no tests/ folder.
    package = Path(common.__file__).parent
    readers = [path.name for path in package.rglob("*.py") if re.search(r"""["'/]tests["'/]""", path.read_text())]
    assert readers == []


def test_infer_body_for_text_models_is_the_16_token_sentence(tmp_path: Path) -> None:
    from slimserve.handler.manifest import MANIFEST_SCHEMA, Manifest

    (tmp_path / "manifest.json").write_text(
        Manifest(
            schema=MANIFEST_SCHEMA,
            name="text",
            task="embedding",
            model={"file": "model.onnx", "sha256": "0" * 64, "bytes": 1},
            inputs=[{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            outputs=[{"name": "embedding", "datatype": "FP32", "shape": [-1, 4]}],
        ).to_json()
    )
    example = Example(folder=tmp_path / "no-such-example", dist=tmp_path)
    body = json.loads(infer_body(example, batch=2))
    assert body["inputs"] == [{"name": "text", "shape": [2], "datatype": "BYTES", "data": [SENTENCE, SENTENCE]}]
